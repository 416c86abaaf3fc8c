//! JSON shapes shared by several operations and by the ORDERS_CACHE webhook.
//!
//! A shape used by one operation only lives in that operation's file (`ops/<operation>.rs`);
//! a shape used by more than one lives here, so both `ops` and `cache` can write it without
//! importing each other.

pub mod order;
