use proptest::prelude::{ProptestConfig, any, prop_assert, proptest};

use super::*;
use crate::mse::policy::{
    EncryptionPolicy, IncomingKind, Outgoing, OutgoingAttempt, detect_incoming,
};
use crate::rng::Rng;
use crate::rng::Seed;
use crate::wire::{Handshake, PeerId, Reserved};

const IH: InfoHash = InfoHash([0x11; 20]);
const OTHER: InfoHash = InfoHash([0x22; 20]);

fn bt_handshake() -> Vec<u8> {
    Handshake {
        reserved: Reserved::rain(false),
        info_hash: IH,
        peer_id: PeerId(*b"-RN0010-abcdefghijkl"),
    }
    .to_bytes()
    .to_vec()
}

fn initiator(seed: u64, provide: CryptoMethods) -> MseHandshake {
    MseHandshake::initiator(
        &mut Rng::new(Seed::from_u64(seed)),
        IH,
        provide,
        bt_handshake(),
    )
    .unwrap()
}

fn receiver(seed: u64, hashes: &[InfoHash], allowed: CryptoMethods) -> MseHandshake {
    MseHandshake::receiver(&mut Rng::new(Seed::from_u64(seed)), hashes, allowed).unwrap()
}

fn take(m: &mut MseHandshake) -> Vec<u8> {
    let mut out = Vec::new();
    let n = m.poll_transmit(&mut out);
    assert_eq!(n, out.len());
    out
}

/// Feeds `bytes` to `m` in chunks whose sizes cycle through `chunks`, and returns what was
/// left when the handshake finished: the start of the stream after it, as a driver sees it.
fn feed<'a>(m: &mut MseHandshake, bytes: &'a [u8], chunks: &[usize], turn: &mut usize) -> &'a [u8] {
    let mut rest = bytes;
    while !rest.is_empty() && !m.is_finished() {
        let n = chunks[*turn % chunks.len()].clamp(1, rest.len());
        *turn += 1;
        m.handle_bytes(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
    rest
}

/// Runs both machines against each other until neither has anything to say. `after_receiver`
/// is appended to the receiver's last flight, encrypted if RC4 was selected, the way a real
/// peer sends its first messages right after step 4.
fn run(
    mut a: MseHandshake,
    mut b: MseHandshake,
    chunks: &[usize],
    after_receiver: &[u8],
) -> (Option<Outcome>, Option<Outcome>) {
    let mut turn = 0;
    let (mut oa, mut ob) = (None, None);
    for _ in 0..10 {
        let to_b = take(&mut a);
        // A receiver that failed drops the rest; one that succeeded has seen everything,
        // because the initiator sends nothing after step 3 until it has read step 4.
        feed(&mut b, &to_b, chunks, &mut turn);
        let mut to_a = take(&mut b);
        if ob.is_none() {
            ob = b.poll_outcome();
            if let Some(Outcome::Established(e)) = &mut ob {
                let mut extra = after_receiver.to_vec();
                if let Some(c) = &mut e.cipher {
                    c.encrypt(&mut extra);
                }
                to_a.extend_from_slice(&extra);
            }
        }
        let rest = feed(&mut a, &to_a, chunks, &mut turn);
        if oa.is_none() {
            oa = a.poll_outcome();
            // Stream bytes that arrived after the finishing chunk go through the cipher.
            if let Some(Outcome::Established(e)) = &mut oa {
                let mut rest = rest.to_vec();
                if let Some(c) = &mut e.cipher {
                    c.decrypt(&mut rest);
                }
                e.leftover.extend_from_slice(&rest);
            }
        }
        if a.is_finished() && b.is_finished() {
            break;
        }
    }
    (oa, ob)
}

fn established(o: Option<Outcome>) -> Established {
    match o {
        Some(Outcome::Established(e)) => *e,
        other => panic!("expected established, got {other:?}"),
    }
}

fn failed(o: Option<Outcome>) -> MseFailure {
    match o {
        Some(Outcome::Failed(f)) => f,
        other => panic!("expected failure, got {other:?}"),
    }
}

fn check_connected(a: Established, b: Established, after_receiver: &[u8], method: CryptoMethod) {
    assert_eq!(a.method, method);
    assert_eq!(b.method, method);
    assert_eq!((a.info_hash, b.info_hash), (IH, IH));
    assert_eq!(b.leftover, bt_handshake(), "receiver gets IA as leftover");
    assert_eq!(
        a.leftover, after_receiver,
        "initiator decrypts what followed step 4"
    );
    match (a.cipher, b.cipher) {
        (Some(mut ca), Some(mut cb)) => {
            assert_eq!(method, CryptoMethod::Rc4);
            let mut msg = b"interested".to_vec();
            ca.encrypt(&mut msg);
            assert_ne!(msg, b"interested");
            cb.decrypt(&mut msg);
            assert_eq!(msg, b"interested");
            let mut back = vec![7u8; 5000];
            cb.encrypt(&mut back);
            ca.decrypt(&mut back);
            assert_eq!(back, vec![7u8; 5000]);
        }
        (None, None) => assert_eq!(method, CryptoMethod::Plaintext),
        _ => panic!("one side has a cipher, the other not"),
    }
}

#[test]
fn every_policy_combination() {
    for outgoing in [
        Outgoing::PreferEncrypted,
        Outgoing::ForceEncrypted,
        Outgoing::Plaintext,
    ] {
        for force_incoming in [false, true] {
            let dialer = EncryptionPolicy {
                outgoing,
                ..EncryptionPolicy::default()
            };
            let listener = EncryptionPolicy {
                force_incoming,
                ..EncryptionPolicy::default()
            };
            match dialer.first_attempt() {
                OutgoingAttempt::Plaintext => {
                    // The listener sees a plain handshake and takes it only if not forced.
                    let first = bt_handshake();
                    assert_eq!(detect_incoming(&first), Some(IncomingKind::Plaintext));
                    assert_eq!(listener.accepts_incoming_plaintext(), !force_incoming);
                }
                OutgoingAttempt::Encrypted(provide) => {
                    let mut a = initiator(1, provide);
                    let b = receiver(2, &[OTHER, IH], listener.incoming_methods());
                    let step1 = take(&mut a);
                    assert_eq!(detect_incoming(&step1), Some(IncomingKind::Encrypted));
                    let mut b = b;
                    b.handle_bytes(&step1).unwrap();
                    let (oa, ob) = run(a, b, &[1000], b"after");
                    let (ea, eb) = (established(oa), established(ob));
                    assert!(listener.accepts_incoming(eb.method));
                    check_connected(ea, eb, b"after", CryptoMethod::Rc4);
                }
            }
        }
    }
}

#[test]
fn plaintext_is_selected_only_when_both_allow_it() {
    // An initiator offering plaintext only (not rain, but other clients can).
    let a = initiator(3, CryptoMethods::PLAINTEXT);
    let b = receiver(4, &[IH], CryptoMethods::ALL);
    let (oa, ob) = run(a, b, &[7], b"plain after");
    check_connected(
        established(oa),
        established(ob),
        b"plain after",
        CryptoMethod::Plaintext,
    );

    // A forcing receiver refuses it.
    let forced = EncryptionPolicy {
        force_incoming: true,
        ..EncryptionPolicy::default()
    };
    let a = initiator(3, CryptoMethods::PLAINTEXT);
    let b = receiver(4, &[IH], forced.incoming_methods());
    let (oa, ob) = run(a, b, &[64], b"");
    assert_eq!(failed(ob), MseFailure::NoCommonMethod);
    assert!(oa.is_none(), "the initiator just sees the connection close");

    // A plaintext-only receiver refuses a forcing initiator.
    let a = initiator(5, CryptoMethods::RC4);
    let b = receiver(6, &[IH], CryptoMethods::PLAINTEXT);
    let (_, ob) = run(a, b, &[64], b"");
    assert_eq!(failed(ob), MseFailure::NoCommonMethod);
    // Under the default policy the dialler then retries in plaintext.
    let policy = EncryptionPolicy::default();
    assert_eq!(
        policy.retry_after(policy.first_attempt()),
        Some(OutgoingAttempt::Plaintext)
    );
}

#[test]
fn a_receiver_preferring_plaintext_selects_it_only_when_offered_and_allowed() {
    let prefer = |seed, allowed| receiver(seed, &[IH], allowed).prefer(CryptoMethod::Plaintext);
    // Both offered, both allowed: plaintext (rain's default receiver picks RC4, as
    // `every_policy_combination` checks).
    let (oa, ob) = run(
        initiator(7, CryptoMethods::ALL),
        prefer(8, CryptoMethods::ALL),
        &[9],
        b"x",
    );
    check_connected(
        established(oa),
        established(ob),
        b"x",
        CryptoMethod::Plaintext,
    );
    // Only RC4 offered, or only RC4 allowed: RC4 still.
    let (oa, ob) = run(
        initiator(7, CryptoMethods::RC4),
        prefer(8, CryptoMethods::ALL),
        &[9],
        b"y",
    );
    check_connected(established(oa), established(ob), b"y", CryptoMethod::Rc4);
    let (oa, ob) = run(
        initiator(7, CryptoMethods::ALL),
        prefer(8, CryptoMethods::RC4),
        &[9],
        b"z",
    );
    check_connected(established(oa), established(ob), b"z", CryptoMethod::Rc4);
    // The policy flag maps to the preference.
    let policy = EncryptionPolicy {
        prefer_plaintext: true,
        ..EncryptionPolicy::default()
    };
    assert_eq!(policy.incoming_preference(), CryptoMethod::Plaintext);
    assert_eq!(
        EncryptionPolicy::default().incoming_preference(),
        CryptoMethod::Rc4
    );
}

#[test]
fn wrong_skey_fails_cleanly() {
    let a = initiator(7, CryptoMethods::ALL);
    let b = receiver(8, &[OTHER], CryptoMethods::ALL);
    let (oa, ob) = run(a, b, &[13], b"");
    assert_eq!(failed(ob), MseFailure::UnknownInfoHash);
    assert!(oa.is_none());
}

#[test]
fn garbage_fails_cleanly() {
    let mut garbage = vec![0u8; 2000];
    Rng::new(Seed::from_u64(99)).fill(&mut garbage);

    let mut b = receiver(1, &[IH], CryptoMethods::ALL);
    b.handle_bytes(&garbage).unwrap();
    assert_eq!(failed(b.poll_outcome()), MseFailure::SyncNotFound);
    assert_eq!(b.handle_bytes(b"more"), Err(MseError::Finished));

    let mut a = initiator(1, CryptoMethods::ALL);
    a.handle_bytes(&garbage).unwrap();
    assert_eq!(failed(a.poll_outcome()), MseFailure::SyncNotFound);

    let mut a = initiator(1, CryptoMethods::ALL);
    a.handle_bytes(&[0u8; 96]).unwrap();
    assert_eq!(failed(a.poll_outcome()), MseFailure::BadPublicKey);

    // Garbage arriving slowly is refused at the limit, not later.
    let mut b = receiver(1, &[IH], CryptoMethods::ALL);
    b.handle_bytes(&garbage[..RECEIVER_SYNC_LIMIT - 1]).unwrap();
    assert!(!b.is_finished());
    b.handle_bytes(&garbage[RECEIVER_SYNC_LIMIT - 1..RECEIVER_SYNC_LIMIT])
        .unwrap();
    assert!(b.is_finished());
}

#[test]
fn tampered_step_three_fails_verification() {
    let mut a = initiator(11, CryptoMethods::ALL);
    let mut b = receiver(12, &[IH], CryptoMethods::ALL);
    b.handle_bytes(&take(&mut a)).unwrap();
    a.handle_bytes(&take(&mut b)).unwrap();
    let mut step3 = take(&mut a);
    step3[40] ^= 0x01; // first byte of ENCRYPT(VC)
    b.handle_bytes(&step3).unwrap();
    assert_eq!(failed(b.poll_outcome()), MseFailure::BadVerification);
}

/// Pads one flight so that the padding the peer sees is exactly `pad` bytes long.
fn padded(flight: &[u8], pad: usize) -> Vec<u8> {
    let mut f = flight.to_vec();
    f.resize(KEY_LEN + pad, 0x5a);
    f
}

#[test]
fn sync_limits_are_exact() {
    for (pad, ok) in [(MAX_PAD_LEN, true), (MAX_PAD_LEN + 1, false)] {
        // Receiver side: PadA of `pad` bytes.
        let mut a = initiator(21, CryptoMethods::ALL);
        let mut b = receiver(22, &[IH], CryptoMethods::ALL);
        b.handle_bytes(&padded(&take(&mut a), pad)).unwrap();
        a.handle_bytes(&take(&mut b)).unwrap();
        b.handle_bytes(&take(&mut a)).unwrap();
        match b.poll_outcome() {
            Some(Outcome::Established(_)) => assert!(ok),
            Some(Outcome::Failed(f)) => {
                assert!(!ok);
                assert_eq!(f, MseFailure::SyncNotFound);
            }
            None => panic!("no outcome"),
        }

        // Initiator side: PadB of `pad` bytes.
        let mut a = initiator(23, CryptoMethods::ALL);
        let mut b = receiver(24, &[IH], CryptoMethods::ALL);
        b.handle_bytes(&take(&mut a)).unwrap();
        let step2 = padded(&take(&mut b), pad);
        a.handle_bytes(&step2).unwrap();
        b.handle_bytes(&take(&mut a)).unwrap();
        a.handle_bytes(&take(&mut b)).unwrap();
        match a.poll_outcome() {
            Some(Outcome::Established(_)) => assert!(ok),
            Some(Outcome::Failed(f)) => {
                assert!(!ok);
                assert_eq!(f, MseFailure::SyncNotFound);
            }
            None => panic!("no outcome"),
        }
    }
}

/// The keystream one side encrypts with after the handshake's DH step, rebuilt from its secret:
/// a test peer uses it to write a step 3 or step 4 with fields a real peer would not send.
fn forging_cipher(m: &MseHandshake, role: Role) -> Rc4Stream {
    let secret = m.secret.expect("public keys exchanged");
    Cipher::new(&secret, &IH, role).split().0
}

/// `VC, field, len(pad), pad` with `pad_len` declared and sent, then `tail`, all encrypted.
fn forged_tail(cipher: &mut Rc4Stream, field: u32, pad_len: u16, tail: &[u8]) -> Vec<u8> {
    let mut plain = vec![0u8; 8];
    plain.extend_from_slice(&field.to_be_bytes());
    plain.extend_from_slice(&pad_len.to_be_bytes());
    plain.resize(plain.len() + usize::from(pad_len), 0xa5);
    plain.extend_from_slice(tail);
    cipher.apply(&mut plain);
    plain
}

/// A receiver that has read a real step 1 and gets a step 3 whose encrypted part is forged
/// with `provide` and a PadC of `pad_c` bytes, followed by a 68-byte IA.
fn receiver_given_step3(provide: u32, pad_c: u16) -> Option<Outcome> {
    let mut a = initiator(31, CryptoMethods::ALL);
    let mut b = receiver(32, &[IH], CryptoMethods::ALL);
    b.handle_bytes(&take(&mut a)).unwrap();
    a.handle_bytes(&take(&mut b)).unwrap();
    // Keep HASH('req1', S) and the obfuscated SKEY; replace the encrypted part.
    let mut step3 = take(&mut a);
    step3.truncate(40);
    let mut ia_len_and_ia = (bt_handshake().len() as u16).to_be_bytes().to_vec();
    ia_len_and_ia.extend_from_slice(&bt_handshake());
    step3.extend(forged_tail(
        &mut forging_cipher(&a, Role::Initiator),
        provide,
        pad_c,
        &ia_len_and_ia,
    ));
    b.handle_bytes(&step3).unwrap();
    b.poll_outcome()
}

#[test]
fn pad_c_over_512_and_no_common_method_fail_the_receiver() {
    let e = established(receiver_given_step3(
        CryptoMethods::ALL.0,
        MAX_PAD_LEN as u16,
    ));
    assert_eq!(e.method, CryptoMethod::Rc4);
    assert_eq!(e.leftover, bt_handshake(), "PadC of 512 is skipped exactly");
    for pad in [MAX_PAD_LEN as u16 + 1, u16::MAX] {
        assert_eq!(
            failed(receiver_given_step3(CryptoMethods::ALL.0, pad)),
            MseFailure::PadTooLong,
            "PadC {pad}"
        );
    }
    // crypto_provide with no method, or only bits nobody defined.
    for provide in [0, 0x04, 0xffff_fffc] {
        assert_eq!(
            failed(receiver_given_step3(provide, 0)),
            MseFailure::NoCommonMethod,
            "provide {provide:#x}"
        );
    }
    // Unknown bits next to a known one are ignored.
    let e = established(receiver_given_step3(0xffff_ffff, 0));
    assert_eq!(e.method, CryptoMethod::Rc4);
}

/// An initiator offering `provide` that gets a real step 2 and then a step 4 forged with
/// `select` and a PadD of `pad_d` bytes.
fn initiator_given_step4(provide: CryptoMethods, select: u32, pad_d: u16) -> Option<Outcome> {
    let mut a = initiator(33, provide);
    let mut b = receiver(34, &[IH], CryptoMethods::ALL);
    b.handle_bytes(&take(&mut a)).unwrap();
    a.handle_bytes(&take(&mut b)).unwrap();
    let _step3 = take(&mut a);
    let step4 = forged_tail(&mut forging_cipher(&b, Role::Receiver), select, pad_d, b"");
    a.handle_bytes(&step4).unwrap();
    a.poll_outcome()
}

#[test]
fn pad_d_over_512_and_bad_crypto_select_fail_the_initiator() {
    let e = established(initiator_given_step4(CryptoMethods::ALL, 2, 512));
    assert_eq!(e.method, CryptoMethod::Rc4);
    assert!(e.leftover.is_empty(), "PadD of 512 is skipped exactly");
    let e = established(initiator_given_step4(CryptoMethods::ALL, 1, 0));
    assert_eq!(e.method, CryptoMethod::Plaintext);
    for pad in [MAX_PAD_LEN as u16 + 1, u16::MAX] {
        assert_eq!(
            failed(initiator_given_step4(CryptoMethods::ALL, 2, pad)),
            MseFailure::PadTooLong,
            "PadD {pad}"
        );
    }
    // No method, several methods, unknown bits, or one we did not offer.
    for (provide, select) in [
        (CryptoMethods::ALL, 0),
        (CryptoMethods::ALL, 3),
        (CryptoMethods::ALL, 4),
        (CryptoMethods::ALL, 0x0102),
        (CryptoMethods::ALL, u32::MAX),
        (CryptoMethods::RC4, 1),
        (CryptoMethods::PLAINTEXT, 2),
    ] {
        assert_eq!(
            failed(initiator_given_step4(provide, select, 0)),
            MseFailure::BadSelect,
            "provide {provide:?}, select {select:#x}"
        );
    }
}

#[test]
fn misuse_is_an_error() {
    let mut rng = Rng::new(Seed::from_u64(0));
    assert_eq!(
        MseHandshake::initiator(&mut rng, IH, CryptoMethods(0), Vec::new()).err(),
        Some(MseError::NoMethods)
    );
    assert_eq!(
        MseHandshake::initiator(&mut rng, IH, CryptoMethods::ALL, vec![0; 65536]).err(),
        Some(MseError::PayloadTooLong(65536))
    );
    assert_eq!(
        MseHandshake::receiver(&mut rng, &[IH], CryptoMethods(4)).err(),
        Some(MseError::NoMethods)
    );
}

#[test]
fn same_seeds_same_bytes() {
    let step1 = |seed| take(&mut initiator(seed, CryptoMethods::ALL));
    assert_eq!(step1(5), step1(5));
    assert_ne!(step1(5), step1(6));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn completes_under_any_split_and_padding(
        seed_a in any::<u64>(),
        seed_b in any::<u64>(),
        chunks in proptest::collection::vec(1usize..300, 1..8),
        force in any::<bool>(),
        after in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let provide = if force { CryptoMethods::RC4 } else { CryptoMethods::ALL };
        let a = initiator(seed_a, provide);
        let b = receiver(seed_b, &[OTHER, IH], CryptoMethods::ALL);
        let (oa, ob) = run(a, b, &chunks, &after);
        check_connected(established(oa), established(ob), &after, CryptoMethod::Rc4);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        seed in any::<u64>(),
    ) {
        let mut a = initiator(seed, CryptoMethods::ALL);
        let mut b = receiver(seed, &[IH], CryptoMethods::ALL);
        let _ = a.handle_bytes(&data);
        let _ = b.handle_bytes(&data);
        let _ = (a.poll_outcome(), b.poll_outcome());
        prop_assert!(a.input.len() <= INITIATOR_SYNC_LIMIT + MAX_INITIAL_PAYLOAD);
    }
}
