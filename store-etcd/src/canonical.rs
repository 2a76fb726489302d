//! One byte string per JSON value, so that etcd's byte-wise value compare
//! (`Compare::ValueEquals`) holds exactly when the values are equal.

use serde_json::Value;

/// The canonical encoding of `value`: compact, object keys in byte order
/// at every depth, numbers and strings as serde_json writes them. Equal
/// [`Value`]s give equal bytes whatever order their maps were built in
/// (serde_json's `preserve_order` feature, enabled by any crate of a build,
/// would otherwise keep insertion order).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
        other => scalar(other, out),
    }
}

fn scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_nothing_is_padded() {
        let v = json!({"b": 1, "a": {"z": [true, null, "x"], "c": 2.5}});
        assert_eq!(
            canonical_json(&v),
            br#"{"a":{"c":2.5,"z":[true,null,"x"]},"b":1}"#.to_vec()
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e12f64..1e12).prop_map(|f| json!(f)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_encoding_parses_back_to_the_same_value(v in value()) {
            let bytes = canonical_json(&v);
            let back: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn equal_values_give_equal_bytes_whatever_the_insertion_order(
            kv in prop::collection::vec((".{0,6}", value()), 0..8)
        ) {
            let forward: serde_json::Map<String, Value> = kv.iter().cloned().collect();
            let backward: serde_json::Map<String, Value> = kv.iter().rev().cloned().collect();
            let (a, b) = (Value::Object(forward), Value::Object(backward));
            // Later duplicates win in `collect`, so the two differ only
            // when a key repeats with different values.
            prop_assert_eq!(a == b, canonical_json(&a) == canonical_json(&b));
        }
    }
}
