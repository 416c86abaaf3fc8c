//! An array read into a `Vec` of at most `N` elements.
//!
//! A `heapless::Vec<T, N>` bounds an array as well, but it is a value of `N` elements' size,
//! and the deserializer moves it through several `Result`s on its way out: for splitOrder's
//! 64 positions that was a 124 KiB stack frame, taken on the event loop's stack (and left
//! resident) by any request routed through the operation. `Capped` holds only the elements
//! that came, on the heap, and refuses the array past `N` with a clear error.

use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// At most `N` elements of `T`, read from a JSON array.
pub struct Capped<T, const N: usize>(Vec<T>);

impl<T, const N: usize> std::ops::Deref for Capped<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a Capped<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an array of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<T>()? {
                    if v.len() == N {
                        return Err(de::Error::invalid_length(N + 1, &self));
                    }
                    v.push(x);
                }
                Ok(Capped(v))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct F {
        xs: Capped<u8, 3>,
    }

    #[test]
    fn up_to_n_elements_are_read_and_more_are_refused() {
        let f: F = crate::json_in::from_frame(br#"{"xs":[1,2,3]}"#).unwrap();
        assert_eq!(&*f.xs, &[1, 2, 3]);
        let f: F = crate::json_in::from_frame(br#"{"xs":[]}"#).unwrap();
        assert!(f.xs.is_empty());
        let e = crate::json_in::from_frame::<F>(br#"{"xs":[1,2,3,4]}"#)
            .err()
            .expect("four is past the cap");
        assert!(e.0.contains("at most 3"), "{}", e.0);
        assert!(crate::json_in::from_frame::<F>(br#"{"xs":{"a":1}}"#).is_err());
    }
}
