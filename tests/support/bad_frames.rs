//! The bad-input corpus shared by `tests/bad_input.rs` (and the fuzz seeds): frames a hostile or
//! broken cloud could send. Each entry says what the agent must do with it.
//!
//! Generated inline rather than as files so every case is visible next to its expectation; the
//! generator covers every operation the protocol names (implemented or not), so an operation
//! that lands later is exercised without touching this file.

#![allow(dead_code)]

use expirenza_agent::ops::Op;

/// What must happen to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Refused before dispatch (not JSON, not an object, no rID, ...): counted in `rejected_frames`.
    Rejected,
    /// A valid envelope naming no known operation: counted in `unknown_ops`.
    Unknown,
    /// Queued; the operation must answer (any state) or report a clean error, never panic.
    Handled,
    /// Not valid JSON, but only inside a value the envelope skips: the envelope parser is
    /// tolerant there, so either refusing or handling (the operation then refuses its own
    /// malformed field) is acceptable. Never a panic, always exactly one of the two.
    Either,
}

pub struct Case {
    pub name: String,
    pub frame: Vec<u8>,
    pub expect: Expect,
}

fn case(name: impl Into<String>, frame: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        frame: frame.into(),
        expect,
    }
}

/// Values of every JSON type and a few hostile shapes, for "wrong type" cases.
pub fn bad_values() -> Vec<(&'static str, String)> {
    vec![
        ("null", "null".into()),
        ("true", "true".into()),
        ("zero", "0".into()),
        ("negative", "-1".into()),
        ("negative_money", "-100.50".into()),
        ("i64_max", "9223372036854775807".into()),
        ("u64_overflow", "18446744073709551616".into()),
        ("huge_int", "1".repeat(400)),
        ("float_exp", "1e308".into()),
        ("float_overflow", "1e999".into()),
        ("neg_float_overflow", "-1e999".into()),
        ("nan_word", "NaN".into()),
        ("empty_string", "\"\"".into()),
        ("spaces", "\"   \"".into()),
        ("sql_drop", "\"12; DROP TABLE orders\"".into()),
        ("sql_or", "\"' OR 1=1 --\"".into()),
        ("sql_quote", "\"12' --\"".into()),
        ("sql_union", "\"1 UNION SELECT secret FROM x\"".into()),
        ("percent_like", "\"%\"".into()),
        ("nul_escape", "\"12\\u0000\"".into()),
        ("lone_surrogate", "\"\\ud800\"".into()),
        ("bad_escape", "\"\\q\"".into()),
        ("control_chars", "\"a\\nb\\rc\\t\"".into()),
        ("cyrillic", "\"Стіл №5\"".into()),
        ("long_string_5k", format!("\"{}\"", "x".repeat(5_000))),
        ("long_string_200", format!("\"{}\"", "7".repeat(200))),
        ("empty_array", "[]".into()),
        ("array", "[1,\"2\",{\"a\":null}]".into()),
        ("big_array", format!("[{}0]", "0,".repeat(20_000))),
        ("empty_object", "{}".into()),
        ("object", "{\"tableNumber\":\"12\"}".into()),
        (
            "nested_ok_depth",
            format!("{}1{}", "[".repeat(10), "]".repeat(10)),
        ),
        (
            "nested_too_deep",
            format!("{}1{}", "[".repeat(40), "]".repeat(40)),
        ),
    ]
}

/// Field names the implemented (and planned) operations read.
pub const FIELDS: &[&str] = &[
    "tableNumber",
    "billId",
    "sum",
    "amount",
    "tips",
    "paymentType",
    "items",
    "guests",
    "message",
    "settings",
    "orderId",
    "dishId",
    "count",
    "products",
    "waiterId",
];

/// The whole corpus.
pub fn corpus() -> Vec<Case> {
    use Expect::*;
    let mut v = vec![
        case("empty", "", Rejected),
        case("whitespace", "   \n\t ", Rejected),
        case("not_json", "hello", Rejected),
        case("app_ping_echo", "Resto 1 ping", Rejected),
        case("json_array", "[1,2,3]", Rejected),
        case("json_string", "\"getBill\"", Rejected),
        case("json_number", "42", Rejected),
        case("json_null", "null", Rejected),
        case("truncated_1", "{\"rID\":\"a\",\"operation\":\"getB", Rejected),
        case("truncated_2", "{\"rID\":\"a\",\"operation\":\"getBill\"", Rejected),
        case("truncated_3", "{", Rejected),
        case("unbalanced", "{\"rID\":\"a\",\"operation\":\"getBill\"}}", Rejected),
        case("trailing_junk", "{\"rID\":\"a\",\"operation\":\"getBill\"} x", Rejected),
        case("two_objects", "{\"rID\":\"a\",\"operation\":\"checkWork\"}{\"rID\":\"b\",\"operation\":\"checkWork\"}", Rejected),
        case("single_quotes", "{'rID':'a','operation':'checkWork'}", Rejected),
        case("trailing_comma", "{\"rID\":\"a\",\"operation\":\"checkWork\",}", Rejected),
        case("no_rid", "{\"operation\":\"getBill\",\"tableNumber\":\"12\"}", Rejected),
        case("empty_rid", "{\"rID\":\"\",\"operation\":\"getBill\"}", Rejected),
        case("blank_rid", "{\"rID\":\"   \",\"operation\":\"getBill\"}", Rejected),
        case("null_rid", "{\"rID\":null,\"operation\":\"getBill\"}", Rejected),
        case("number_rid", "{\"rID\":12,\"operation\":\"getBill\"}", Rejected),
        case("object_rid", "{\"rID\":{\"a\":1},\"operation\":\"getBill\"}", Rejected),
        case("array_rid", "{\"rID\":[\"a\"],\"operation\":\"getBill\"}", Rejected),
        case("huge_rid", format!("{{\"rID\":\"{}\",\"operation\":\"getBill\"}}", "r".repeat(100_000)), Rejected),
        case("no_operation", "{\"rID\":\"a\"}", Rejected),
        case("number_operation", "{\"rID\":\"a\",\"operation\":7}", Rejected),
        case("null_operation", "{\"rID\":\"a\",\"operation\":null}", Rejected),
        case("huge_operation", format!("{{\"rID\":\"a\",\"operation\":\"{}\"}}", "o".repeat(10_000)), Rejected),
        // A repeated key counts once, the last wins (docs/protocol.md §2.2).
        case("duplicate_rid", "{\"rID\":\"a\",\"rID\":\"b\",\"operation\":\"checkWork\"}", Handled),
        case("duplicate_operation", "{\"rID\":\"a\",\"operation\":\"checkWork\",\"operation\":\"getBill\"}", Handled),
        case("deep_object", format!("{{\"rID\":\"a\",\"operation\":\"getBill\",\"x\":{}1{}}}", "{\"a\":".repeat(100_000), "}".repeat(100_000)), Rejected),
        case("deep_array", format!("{{\"rID\":\"a\",\"operation\":\"getBill\",\"x\":{}{}}}", "[".repeat(1_000_000), "]".repeat(1_000_000)), Rejected),
        case("unclosed_deep", format!("{{\"rID\":\"a\",\"operation\":\"getBill\",\"x\":{}", "[".repeat(50_000)), Rejected),
        case("invalid_utf8", b"{\"rID\":\"a\xff\xfe\",\"operation\":\"checkWork\"}".to_vec(), Rejected),
        case("overlong_utf8", b"{\"rID\":\"\xc0\xaf\",\"operation\":\"checkWork\"}".to_vec(), Rejected),
        case("nul_bytes", b"\0\0\0\0".to_vec(), Rejected),
        case("bom_prefixed", "\u{feff}{\"rID\":\"a\",\"operation\":\"checkWork\"}", Handled),
        case("unknown_op", "{\"rID\":\"u1\",\"operation\":\"dropDatabase\"}", Unknown),
        case("unknown_op_sql", "{\"rID\":\"u2\",\"operation\":\"getBill; DROP TABLE orders\"}", Unknown),
        case("unknown_op_empty", "{\"rID\":\"u3\",\"operation\":\"\"}", Unknown),
        case("unknown_op_unicode", "{\"rID\":\"u4\",\"operation\":\"getBіll\"}", Unknown),
        case("rid_weird_but_valid", "{\"rID\":\"\\u0000\\n'; DROP TABLE orders --\",\"operation\":\"checkWork\"}", Handled),
        case("rid_cyrillic", "{\"rID\":\"Запит #1 \\\"лапки\\\"\",\"operation\":\"checkWork\"}", Handled),
        case("getbill_sql_drop", "{\"rID\":\"s1\",\"operation\":\"getBill\",\"tableNumber\":\"12; DROP TABLE orders\"}", Handled),
        case("getbill_sql_or", "{\"rID\":\"s2\",\"operation\":\"getBill\",\"tableNumber\":\"' OR 1=1 --\"}", Handled),
        case("getbill_bill_sql", "{\"rID\":\"s3\",\"operation\":\"getBill\",\"billId\":\"x' OR '1'='1\"}", Handled),
        case("getbill_both_empty", "{\"rID\":\"s4\",\"operation\":\"getBill\",\"tableNumber\":\"\",\"billId\":\"\"}", Handled),
        case("getbill_duplicate_table", "{\"rID\":\"s5\",\"operation\":\"getBill\",\"tableNumber\":\"12\",\"tableNumber\":\"1\"}", Handled),
        case("getbill_unknown_fields", "{\"rID\":\"s6\",\"operation\":\"getBill\",\"tableNumber\":\"12\",\"zzz\":{\"a\":[1,2,{\"b\":null}]}}", Handled),
        case("case_insensitive_op", "{\"rID\":\"s7\",\"operation\":\"GETBILL\",\"tableNumber\":\"12\"}", Handled),
    ];
    // Wrong types (and hostile values) for every field of every operation.
    for op in Op::ALL {
        for field in FIELDS {
            for (vname, value) in bad_values() {
                let rid = format!("{}-{}-{}", op.name(), field, vname);
                let frame = format!(
                    "{{\"rID\":\"{rid}\",\"operation\":\"{}\",\"{field}\":{value}}}",
                    op.name()
                );
                let expect = if vname == "nested_too_deep" {
                    Rejected
                } else if serde_json::from_str::<serde_json::Value>(&frame).is_ok() {
                    // Valid JSON with a valid envelope must reach the operation.
                    Handled
                } else {
                    Either
                };
                v.push(case(rid, frame, expect));
            }
        }
    }
    v
}
