use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::Decode;

fn lenient(input: &[u8]) -> Result<Value<'_>, Error> {
    decode(input, &Limits::lenient())
}

fn kind_of(input: &[u8], limits: &Limits) -> ErrorKind {
    decode(input, limits).expect_err("must be rejected").kind
}

#[test]
fn decodes_each_type_with_spans() {
    let doc = b"d3:agei-42e4:listl1:ai7ee4:name4:raine";
    let v = lenient(doc).unwrap();
    assert_eq!(v.span(), 0..doc.len());
    assert_eq!(v.get(b"age").unwrap().as_int(), Some(-42));
    assert_eq!(v.get(b"name").unwrap().as_str(), Some("rain"));
    let list = v.get(b"list").unwrap();
    assert_eq!(list.raw(), b"l1:ai7ee");
    assert_eq!(&doc[list.span()], b"l1:ai7ee");
    let items = list.as_list().unwrap();
    assert_eq!(items[0].as_bytes(), Some(&b"a"[..]));
    assert_eq!(items[1].as_int(), Some(7));
    assert_eq!(items[1].span(), 21..24);
    assert!(v.get(b"missing").is_none());
}

#[test]
fn integer_rules() {
    let l = Limits::lenient();
    assert_eq!(lenient(b"i0e").unwrap().as_int(), Some(0));
    assert_eq!(
        lenient(b"i9223372036854775807e").unwrap().as_int(),
        Some(i64::MAX)
    );
    assert_eq!(
        lenient(b"i-9223372036854775808e").unwrap().as_int(),
        Some(i64::MIN)
    );
    assert_eq!(
        kind_of(b"i9223372036854775808e", &l),
        ErrorKind::IntegerOverflow
    );
    assert_eq!(
        kind_of(b"i-9223372036854775809e", &l),
        ErrorKind::IntegerOverflow
    );
    assert_eq!(
        kind_of(b"i99999999999999999999999e", &l),
        ErrorKind::IntegerOverflow
    );
    assert_eq!(kind_of(b"i03e", &l), ErrorKind::LeadingZero);
    assert_eq!(kind_of(b"i-0e", &l), ErrorKind::NegativeZero);
    assert_eq!(kind_of(b"ie", &l), ErrorKind::EmptyInteger);
    assert_eq!(kind_of(b"i-e", &l), ErrorKind::EmptyInteger);
    assert_eq!(kind_of(b"i1x", &l), ErrorKind::UnexpectedByte(b'x'));
    assert_eq!(kind_of(b"i12", &l), ErrorKind::UnexpectedEnd);
}

#[test]
fn string_rules() {
    let l = Limits::lenient();
    assert_eq!(lenient(b"0:").unwrap().as_bytes(), Some(&b""[..]));
    assert_eq!(kind_of(b"5:abc", &l), ErrorKind::StringTooLong);
    assert_eq!(
        kind_of(b"99999999999999999999999999:x", &l),
        ErrorKind::StringTooLong
    );
    assert_eq!(kind_of(b"03:abc", &l), ErrorKind::LeadingZero);
    assert_eq!(kind_of(b"3abc", &l), ErrorKind::UnexpectedByte(b'a'));
}

#[test]
fn errors_carry_offsets() {
    let e = lenient(b"d1:ai1e1:bi03ee").unwrap_err();
    assert_eq!(
        e,
        Error {
            kind: ErrorKind::LeadingZero,
            offset: 11
        }
    );
    assert_eq!(e.to_string(), "leading zero in a number at byte 11");
    let e = lenient(b"li1ei2e").unwrap_err();
    assert_eq!(
        e,
        Error {
            kind: ErrorKind::UnexpectedEnd,
            offset: 7
        }
    );
    let e = lenient(b"i1ei2e").unwrap_err();
    assert_eq!(
        e,
        Error {
            kind: ErrorKind::TrailingData,
            offset: 3
        }
    );
    let e = lenient(b"di1ei2ee").unwrap_err();
    assert_eq!(
        e,
        Error {
            kind: ErrorKind::KeyNotString,
            offset: 1
        }
    );
    assert_eq!(
        kind_of(b"x", &Limits::lenient()),
        ErrorKind::UnexpectedByte(b'x')
    );
    assert_eq!(kind_of(b"", &Limits::lenient()), ErrorKind::UnexpectedEnd);
}

#[test]
fn depth_and_size_limits() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::lenient()
    };
    assert!(decode(b"llleee", &limits).is_ok());
    assert_eq!(kind_of(b"lllleeee", &limits), ErrorKind::TooDeep);
    assert_eq!(kind_of(b"ld1:ald1:aleeee", &limits), ErrorKind::TooDeep);
    // A nesting bomb far past the default limit fails cleanly instead of overflowing the stack.
    let bomb: Vec<u8> = std::iter::repeat_n(b'l', 1_000_000).collect();
    assert_eq!(kind_of(&bomb, &Limits::lenient()), ErrorKind::TooDeep);
    let small = Limits {
        max_size: 4,
        ..Limits::lenient()
    };
    assert_eq!(kind_of(b"i12345e", &small), ErrorKind::TooLarge);
}

#[test]
fn strict_mode_rejects_non_canonical_dicts_lenient_accepts() {
    let unsorted = b"d1:bi1e1:ai2ee";
    let duplicate = b"d1:ai1e1:ai2ee";
    assert_eq!(
        kind_of(unsorted, &Limits::strict()),
        ErrorKind::UnsortedKeys
    );
    assert_eq!(
        kind_of(duplicate, &Limits::strict()),
        ErrorKind::DuplicateKey
    );
    assert_eq!(decode(unsorted, &Limits::strict()).unwrap_err().offset, 7);
    let v = lenient(unsorted).unwrap();
    assert_eq!(v.get(b"a").unwrap().as_int(), Some(2));
    let v = lenient(duplicate).unwrap();
    assert_eq!(
        v.get(b"a").unwrap().as_int(),
        Some(1),
        "the first duplicate wins"
    );
    let mut out = Vec::new();
    lenient(unsorted).unwrap().encode(&mut out);
    assert_eq!(out, b"d1:ai2e1:bi1ee");
    out.clear();
    v.encode(&mut out);
    assert_eq!(out, b"d1:ai1ee");
}

#[test]
fn decode_prefix_reports_three_outcomes() {
    match decode_prefix(b"d1:ai1eeXYZ", &Limits::lenient()) {
        Decode::Complete { value, used } => {
            assert_eq!(used, 8);
            assert_eq!(value.get(b"a").unwrap().as_int(), Some(1));
        }
        other => panic!("expected complete, got {other:?}"),
    }
    assert_eq!(
        decode_prefix(b"d1:ai1", &Limits::lenient()),
        Decode::Incomplete
    );
    assert_eq!(
        decode_prefix(b"10:abc", &Limits::lenient()),
        Decode::Incomplete
    );
    assert!(matches!(
        decode_prefix(b"d1:ai01ee", &Limits::lenient()),
        Decode::Invalid(_)
    ));
}

#[test]
fn item_encoding_is_canonical() {
    let item = Item::dict().with("zeta", 1).with("alpha", "x").with(
        "list",
        Item::List(vec![Item::Int(-3), Item::from(&b"\x00\xff"[..])]),
    );
    assert_eq!(
        item.to_bytes(),
        b"d5:alpha1:x4:listli-3e2:\x00\xffe4:zetai1ee"
    );
    let decoded = decode(&item.to_bytes(), &Limits::strict())
        .unwrap()
        .to_item();
    assert_eq!(decoded, item);
}

fn arb_item() -> impl Strategy<Value = Item> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Item::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Item::Bytes),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Item::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..6
            )
            .prop_map(|m: BTreeMap<Vec<u8>, Item>| Item::Dict(m)),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_documents_round_trip(item in arb_item()) {
        let bytes = item.to_bytes();
        let value = decode(&bytes, &Limits::strict()).unwrap();
        prop_assert_eq!(value.span(), 0..bytes.len());
        let mut again = Vec::new();
        value.encode(&mut again);
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(value.to_item(), item);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, &Limits::lenient());
        let _ = decode(&bytes, &Limits::strict());
        let _ = decode_prefix(&bytes, &Limits { max_depth: 4, ..Limits::lenient() });
    }

    #[test]
    fn every_strict_prefix_is_incomplete(item in arb_item()) {
        let bytes = item.to_bytes();
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_prefix(&bytes[..cut], &Limits::strict()), Decode::Incomplete);
        }
    }
}

#[test]
fn token_bombs_stop_at_the_token_limit() {
    // 400 000 empty strings: 800 KB of input that would become 400 000 heap values.
    let mut bomb = b"l".to_vec();
    for _ in 0..400_000 {
        bomb.extend_from_slice(b"0:");
    }
    bomb.push(b'e');
    let limits = Limits {
        max_tokens: 100_000,
        ..Limits::lenient()
    };
    assert_eq!(kind_of(&bomb, &limits), ErrorKind::TooManyTokens);
    let exact = Limits {
        max_tokens: 400_001,
        ..Limits::lenient()
    };
    assert!(
        decode(&bomb, &exact).is_ok(),
        "the list and its items fit exactly"
    );
}
