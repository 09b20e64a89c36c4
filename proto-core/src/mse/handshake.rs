//! The MSE handshake as a machine fed with bytes, for both ends of a connection.
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! 5 A->B: ENCRYPT2(payload)
//! ```
//!
//! Driving loop: construct with [`MseHandshake::initiator`] or [`MseHandshake::receiver`], then
//! after construction and after every [`MseHandshake::handle_bytes`] drain
//! [`MseHandshake::poll_transmit`] to the socket and then check [`MseHandshake::poll_outcome`].
//! The order matters: the receiver's step 4 must be on the wire before the first byte of the
//! encrypted stream. Every outcome is final.
//!
//! The padding lengths are unknown to the reader, so each side finds its place by searching
//! for a known pattern: the initiator looks for `ENCRYPT(VC)` within 616 bytes of the start of
//! the receiver's stream, the receiver for `HASH('req1', S)` within 628 bytes. Nothing is
//! buffered beyond those limits and the bounded padding and payload lengths.

use crate::hash::InfoHash;
use crate::rng::Rng;

use super::cipher::{Cipher, Rc4Stream, Role};
use super::dh::{KEY_LEN, KeyPair};

/// Longest padding accepted or sent (PadA..PadD are 0 to 512 bytes).
pub const MAX_PAD_LEN: usize = 512;

/// Padding we send is `0..PAD_SEND_BOUND` bytes long, as rain does.
const PAD_SEND_BOUND: u64 = 512;

/// Longest initial payload (`len(IA)` is a 16-bit field).
pub const MAX_INITIAL_PAYLOAD: usize = u16::MAX as usize;

/// How far into the receiver's stream the initiator looks for `ENCRYPT(VC)` (96 + 512 + 8).
pub const INITIATOR_SYNC_LIMIT: usize = KEY_LEN + MAX_PAD_LEN + 8;

/// How far into the initiator's stream the receiver looks for `HASH('req1', S)` (96 + 512 + 20).
pub const RECEIVER_SYNC_LIMIT: usize = KEY_LEN + MAX_PAD_LEN + 20;

/// A set of crypto methods (`crypto_provide`) as bits: 1 = plaintext, 2 = RC4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoMethods(pub u32);

impl CryptoMethods {
    /// Plaintext after the handshake.
    pub const PLAINTEXT: CryptoMethods = CryptoMethods(0x01);
    /// RC4 after the handshake.
    pub const RC4: CryptoMethods = CryptoMethods(0x02);
    /// Either.
    pub const ALL: CryptoMethods = CryptoMethods(0x03);

    /// Whether `method` is in the set.
    pub fn contains(self, method: CryptoMethod) -> bool {
        self.0 & method.bit() != 0
    }

    /// Whether the set names no method we know.
    pub fn is_empty(self) -> bool {
        self.0 & Self::ALL.0 == 0
    }
}

/// The method selected for the rest of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoMethod {
    /// The handshake was obfuscated; the stream after it is not.
    Plaintext,
    /// The stream is RC4-encrypted.
    Rc4,
}

impl CryptoMethod {
    /// The `crypto_select` bit.
    pub fn bit(self) -> u32 {
        match self {
            CryptoMethod::Plaintext => 1,
            CryptoMethod::Rc4 => 2,
        }
    }

    /// The other method.
    fn other(self) -> CryptoMethod {
        match self {
            CryptoMethod::Plaintext => CryptoMethod::Rc4,
            CryptoMethod::Rc4 => CryptoMethod::Plaintext,
        }
    }
}

/// A finished handshake: everything the connection needs next.
#[derive(Debug)]
pub struct Established {
    /// The selected method.
    pub method: CryptoMethod,
    /// The torrent (the initiator's SKEY; found by the receiver among its candidates).
    pub info_hash: InfoHash,
    /// The stream cipher when [`CryptoMethod::Rc4`] was selected.
    pub cipher: Option<Cipher>,
    /// Plaintext bytes that came with the handshake and belong to the stream after it,
    /// already decrypted. On the receiver they start with the initial payload (IA), which is
    /// normally the peer's BitTorrent handshake.
    pub leftover: Vec<u8>,
}

/// Why a handshake failed. All are the peer's doing; the connection should be closed (and,
/// for an outgoing one under the default policy, retried in plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MseFailure {
    /// The peer's public key is degenerate.
    #[error("invalid Diffie-Hellman public key")]
    BadPublicKey,
    /// The synchronisation pattern did not appear within the byte limit.
    #[error("synchronisation pattern not found")]
    SyncNotFound,
    /// The peer asked for a torrent we do not serve (or a garbled SKEY).
    #[error("unknown info-hash")]
    UnknownInfoHash,
    /// The verification constant did not decrypt to zeros: wrong key.
    #[error("verification constant mismatch")]
    BadVerification,
    /// A padding length above 512.
    #[error("padding longer than 512 bytes")]
    PadTooLong,
    /// No method offered by the initiator is allowed here.
    #[error("no common crypto method")]
    NoCommonMethod,
    /// The receiver selected a method we did not offer, or several.
    #[error("invalid crypto_select")]
    BadSelect,
}

/// The end of a handshake.
#[derive(Debug)]
pub enum Outcome {
    /// Both sides agreed; the connection continues with the selected method. (Boxed: the
    /// two RC4 states are half a kilobyte.)
    Established(Box<Established>),
    /// The peer broke the handshake.
    Failed(MseFailure),
}

/// Misuse by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The method set is empty.
    #[error("no crypto method allowed")]
    NoMethods,
    /// The initial payload does not fit the 16-bit length field.
    #[error("initial payload of {0} bytes exceeds 65535")]
    PayloadTooLong(usize),
    /// Bytes were fed after the handshake ended.
    #[error("the handshake has already finished")]
    Finished,
}

/// Where an initiator is.
#[derive(Debug)]
enum InitiatorState {
    AwaitPublicKey,
    /// Looking for `ENCRYPT(VC)`; holds the expected 8 bytes.
    Sync([u8; 8]),
    AwaitSelect,
    PadD {
        len: usize,
        method: CryptoMethod,
    },
}

/// Where a receiver is.
#[derive(Debug)]
enum ReceiverState {
    AwaitPublicKey,
    /// Looking for `HASH('req1', S)`.
    Sync([u8; 20]),
    AwaitSkey,
    AwaitProvide,
    PadC {
        len: usize,
        method: CryptoMethod,
    },
    InitialPayload {
        len: usize,
        method: CryptoMethod,
    },
}

#[derive(Debug)]
enum Side {
    Initiator {
        info_hash: InfoHash,
        provide: CryptoMethods,
        initial_payload: Vec<u8>,
        state: InitiatorState,
    },
    Receiver {
        /// `(HASH('req2', info_hash), info_hash)` for every torrent we serve.
        candidates: Vec<([u8; 20], InfoHash)>,
        allowed: CryptoMethods,
        /// Selected when the initiator offers both and both are allowed.
        prefer: CryptoMethod,
        found: Option<InfoHash>,
        state: ReceiverState,
    },
}

/// One MSE handshake, either end. See the module documentation for the driving loop.
#[derive(Debug)]
pub struct MseHandshake {
    rng: Rng,
    keys: KeyPair,
    secret: Option<[u8; KEY_LEN]>,
    /// Set once keys are known: `encrypt` for what we send, `decrypt` for what we read.
    encrypt: Option<Rc4Stream>,
    decrypt: Option<Rc4Stream>,
    side: Side,
    /// Received bytes not consumed yet.
    input: Vec<u8>,
    /// Bytes waiting for [`MseHandshake::poll_transmit`].
    output: Vec<u8>,
    outcome: Option<Outcome>,
    finished: bool,
}

fn hash2(label: &[u8], data: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(label);
    h.update(data);
    h.finalize().into()
}

/// Position of `needle` in `haystack` starting no later than `MAX_PAD_LEN`.
fn find_sync(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .take(MAX_PAD_LEN + 1)
        .position(|w| w == needle)
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// What one step of the machine did.
enum Step {
    /// Consumed input or changed state; try again.
    Progress,
    /// Needs more bytes.
    Wait,
    /// Finished (the outcome is set).
    Done,
}

impl MseHandshake {
    /// An outgoing handshake for `info_hash`, offering `provide` and sending `initial_payload`
    /// (rain sends its 68-byte BitTorrent handshake) inside step 3. Step 1 is ready to be
    /// transmitted at once.
    pub fn initiator(
        rng: &mut Rng,
        info_hash: InfoHash,
        provide: CryptoMethods,
        initial_payload: Vec<u8>,
    ) -> Result<Self, MseError> {
        if provide.is_empty() {
            return Err(MseError::NoMethods);
        }
        if initial_payload.len() > MAX_INITIAL_PAYLOAD {
            return Err(MseError::PayloadTooLong(initial_payload.len()));
        }
        let mut m = Self::new(
            rng,
            Side::Initiator {
                info_hash,
                provide: CryptoMethods(provide.0 & CryptoMethods::ALL.0),
                initial_payload,
                state: InitiatorState::AwaitPublicKey,
            },
        );
        m.send_public_key();
        Ok(m)
    }

    /// An incoming handshake for any of `info_hashes` (the SKEY identifies which), selecting
    /// among `allowed`: RC4 when offered and allowed, else plaintext when offered and allowed
    /// (rain's order; [`MseHandshake::prefer`] changes it).
    pub fn receiver(
        rng: &mut Rng,
        info_hashes: &[InfoHash],
        allowed: CryptoMethods,
    ) -> Result<Self, MseError> {
        if allowed.is_empty() {
            return Err(MseError::NoMethods);
        }
        let candidates = info_hashes
            .iter()
            .map(|ih| (hash2(b"req2", &ih.0), *ih))
            .collect();
        Ok(Self::new(
            rng,
            Side::Receiver {
                candidates,
                allowed,
                prefer: CryptoMethod::Rc4,
                found: None,
                state: ReceiverState::AwaitPublicKey,
            },
        ))
    }

    /// Makes a receiver select `method` when the initiator offers both methods and both are
    /// allowed. libtorrent's receiver prefers plaintext: the handshake is still obfuscated,
    /// and the stream costs no cipher on either end. No effect on an initiator.
    pub fn prefer(mut self, method: CryptoMethod) -> Self {
        if let Side::Receiver { prefer, .. } = &mut self.side {
            *prefer = method;
        }
        self
    }

    fn new(rng: &mut Rng, side: Side) -> Self {
        let mut rng = Rng::new(rng.child());
        let keys = KeyPair::generate(&mut rng);
        MseHandshake {
            rng,
            keys,
            secret: None,
            encrypt: None,
            decrypt: None,
            side,
            input: Vec::new(),
            output: Vec::new(),
            outcome: None,
            finished: false,
        }
    }

    /// Our public key followed by random padding (steps 1 and 2).
    fn send_public_key(&mut self) {
        self.output.extend_from_slice(self.keys.public_key());
        let pad = self.rng.below(PAD_SEND_BOUND) as usize;
        let start = self.output.len();
        self.output.resize(start + pad, 0);
        self.rng.fill(&mut self.output[start..]);
    }

    /// Feeds bytes received from the peer. Errors only when called after the outcome.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<(), MseError> {
        if self.finished {
            return Err(MseError::Finished);
        }
        self.input.extend_from_slice(data);
        loop {
            let step = match self.side {
                Side::Initiator { .. } => self.step_initiator(),
                Side::Receiver { .. } => self.step_receiver(),
            };
            match step {
                Ok(Step::Progress) => {}
                Ok(Step::Wait) => return Ok(()),
                Ok(Step::Done) => {
                    self.finished = true;
                    return Ok(());
                }
                Err(failure) => {
                    self.finished = true;
                    self.outcome = Some(Outcome::Failed(failure));
                    self.input = Vec::new();
                    return Ok(());
                }
            }
        }
    }

    /// Appends the bytes to send to `buf` and returns how many there were.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.output.len();
        buf.append(&mut self.output);
        n
    }

    /// The outcome, once; `None` while the handshake is still going (or after it was taken).
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// Whether the handshake has ended (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Derives S from the peer's public key at the front of the input and consumes it.
    fn take_public_key(&mut self) -> Result<Option<[u8; KEY_LEN]>, MseFailure> {
        if self.input.len() < KEY_LEN {
            return Ok(None);
        }
        let mut y = [0u8; KEY_LEN];
        y.copy_from_slice(&self.input[..KEY_LEN]);
        self.input.drain(..KEY_LEN);
        let s = self
            .keys
            .shared_secret(&y)
            .ok_or(MseFailure::BadPublicKey)?;
        self.secret = Some(s);
        Ok(Some(s))
    }

    fn set_ciphers(&mut self, skey: &InfoHash, role: Role) {
        let secret = self.secret.expect("secret before ciphers");
        let (enc, dec) = Cipher::new(&secret, skey, role).split();
        self.encrypt = Some(enc);
        self.decrypt = Some(dec);
    }

    fn decrypt_front(&mut self, n: usize) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.input.drain(..n).collect();
        self.decrypt
            .as_mut()
            .expect("decrypt cipher")
            .apply(&mut bytes);
        bytes
    }

    fn finish(&mut self, method: CryptoMethod, info_hash: InfoHash, mut leftover: Vec<u8>) {
        let mut rest = std::mem::take(&mut self.input);
        let cipher = match method {
            CryptoMethod::Rc4 => {
                let enc = self.encrypt.take().expect("encrypt cipher");
                let mut dec = self.decrypt.take().expect("decrypt cipher");
                dec.apply(&mut rest);
                Some(Cipher::from_parts(enc, dec))
            }
            CryptoMethod::Plaintext => None,
        };
        leftover.append(&mut rest);
        self.outcome = Some(Outcome::Established(Box::new(Established {
            method,
            info_hash,
            cipher,
            leftover,
        })));
    }

    fn step_initiator(&mut self) -> Result<Step, MseFailure> {
        let Side::Initiator { state, .. } = &self.side else {
            unreachable!("initiator step on a receiver");
        };
        match *state {
            InitiatorState::AwaitPublicKey => {
                let Some(secret) = self.take_public_key()? else {
                    return Ok(Step::Wait);
                };
                let Side::Initiator {
                    info_hash,
                    provide,
                    initial_payload,
                    ..
                } = &mut self.side
                else {
                    unreachable!()
                };
                let info_hash = *info_hash;
                let provide = *provide;
                let ia = std::mem::take(initial_payload);
                self.set_ciphers(&info_hash, Role::Initiator);
                // Step 3.
                self.output.extend_from_slice(&hash2(b"req1", &secret));
                let req2 = hash2(b"req2", &info_hash.0);
                let req3 = hash2(b"req3", &secret);
                self.output
                    .extend(req2.iter().zip(req3.iter()).map(|(a, b)| a ^ b));
                let pad_c = self.rng.below(PAD_SEND_BOUND) as usize;
                let start = self.output.len();
                self.output.extend_from_slice(&[0u8; 8]);
                self.output.extend_from_slice(&provide.0.to_be_bytes());
                self.output.extend_from_slice(&(pad_c as u16).to_be_bytes());
                self.output.resize(self.output.len() + pad_c, 0);
                self.output
                    .extend_from_slice(&(ia.len() as u16).to_be_bytes());
                self.output.extend_from_slice(&ia);
                let enc = self.encrypt.as_mut().expect("encrypt cipher");
                enc.apply(&mut self.output[start..]);
                // What VC looks like encrypted under keyB; computing it advances the
                // decrypt cipher past VC, which is where the stream continues after sync.
                let mut vc = [0u8; 8];
                self.decrypt
                    .as_mut()
                    .expect("decrypt cipher")
                    .apply(&mut vc);
                self.set_initiator_state(InitiatorState::Sync(vc));
                Ok(Step::Progress)
            }
            InitiatorState::Sync(vc) => {
                if let Some(pos) = find_sync(&self.input, &vc) {
                    self.input.drain(..pos + vc.len());
                    self.set_initiator_state(InitiatorState::AwaitSelect);
                    return Ok(Step::Progress);
                }
                if self.input.len() >= MAX_PAD_LEN + vc.len() {
                    return Err(MseFailure::SyncNotFound);
                }
                Ok(Step::Wait)
            }
            InitiatorState::AwaitSelect => {
                if self.input.len() < 6 {
                    return Ok(Step::Wait);
                }
                let head = self.decrypt_front(6);
                let select = be32(&head);
                let pad_len = be16(&head[4..]);
                let Side::Initiator { provide, .. } = &self.side else {
                    unreachable!()
                };
                let method = match select {
                    1 => CryptoMethod::Plaintext,
                    2 => CryptoMethod::Rc4,
                    _ => return Err(MseFailure::BadSelect),
                };
                if !provide.contains(method) {
                    return Err(MseFailure::BadSelect);
                }
                if pad_len > MAX_PAD_LEN {
                    return Err(MseFailure::PadTooLong);
                }
                self.set_initiator_state(InitiatorState::PadD {
                    len: pad_len,
                    method,
                });
                Ok(Step::Progress)
            }
            InitiatorState::PadD { len, method } => {
                if self.input.len() < len {
                    return Ok(Step::Wait);
                }
                self.decrypt_front(len);
                let Side::Initiator { info_hash, .. } = &self.side else {
                    unreachable!()
                };
                let info_hash = *info_hash;
                self.finish(method, info_hash, Vec::new());
                Ok(Step::Done)
            }
        }
    }

    fn set_initiator_state(&mut self, next: InitiatorState) {
        if let Side::Initiator { state, .. } = &mut self.side {
            *state = next;
        }
    }

    fn set_receiver_state(&mut self, next: ReceiverState) {
        if let Side::Receiver { state, .. } = &mut self.side {
            *state = next;
        }
    }

    fn step_receiver(&mut self) -> Result<Step, MseFailure> {
        let Side::Receiver { state, .. } = &self.side else {
            unreachable!("receiver step on an initiator");
        };
        match *state {
            ReceiverState::AwaitPublicKey => {
                let Some(secret) = self.take_public_key()? else {
                    return Ok(Step::Wait);
                };
                self.send_public_key();
                self.set_receiver_state(ReceiverState::Sync(hash2(b"req1", &secret)));
                Ok(Step::Progress)
            }
            ReceiverState::Sync(req1) => {
                if let Some(pos) = find_sync(&self.input, &req1) {
                    self.input.drain(..pos + req1.len());
                    self.set_receiver_state(ReceiverState::AwaitSkey);
                    return Ok(Step::Progress);
                }
                if self.input.len() >= MAX_PAD_LEN + req1.len() {
                    return Err(MseFailure::SyncNotFound);
                }
                Ok(Step::Wait)
            }
            ReceiverState::AwaitSkey => {
                if self.input.len() < 20 {
                    return Ok(Step::Wait);
                }
                let secret = self.secret.expect("secret after public key");
                let req3 = hash2(b"req3", &secret);
                let mut req2 = [0u8; 20];
                for (i, b) in req2.iter_mut().enumerate() {
                    *b = self.input[i] ^ req3[i];
                }
                self.input.drain(..20);
                let Side::Receiver {
                    candidates, found, ..
                } = &mut self.side
                else {
                    unreachable!()
                };
                let info_hash = candidates
                    .iter()
                    .find(|(h, _)| *h == req2)
                    .map(|(_, ih)| *ih)
                    .ok_or(MseFailure::UnknownInfoHash)?;
                *found = Some(info_hash);
                self.set_ciphers(&info_hash, Role::Receiver);
                self.set_receiver_state(ReceiverState::AwaitProvide);
                Ok(Step::Progress)
            }
            ReceiverState::AwaitProvide => {
                if self.input.len() < 14 {
                    return Ok(Step::Wait);
                }
                let head = self.decrypt_front(14);
                if head[..8] != [0u8; 8] {
                    return Err(MseFailure::BadVerification);
                }
                let provide = CryptoMethods(be32(&head[8..]));
                let pad_len = be16(&head[12..]);
                if pad_len > MAX_PAD_LEN {
                    return Err(MseFailure::PadTooLong);
                }
                let Side::Receiver {
                    allowed, prefer, ..
                } = &self.side
                else {
                    unreachable!()
                };
                let method = [*prefer, prefer.other()]
                    .into_iter()
                    .find(|m| provide.contains(*m) && allowed.contains(*m))
                    .ok_or(MseFailure::NoCommonMethod)?;
                self.set_receiver_state(ReceiverState::PadC {
                    len: pad_len,
                    method,
                });
                Ok(Step::Progress)
            }
            ReceiverState::PadC { len, method } => {
                if self.input.len() < len + 2 {
                    return Ok(Step::Wait);
                }
                let pad_and_len = self.decrypt_front(len + 2);
                let ia_len = be16(&pad_and_len[len..]);
                self.set_receiver_state(ReceiverState::InitialPayload {
                    len: ia_len,
                    method,
                });
                Ok(Step::Progress)
            }
            ReceiverState::InitialPayload { len, method } => {
                if self.input.len() < len {
                    return Ok(Step::Wait);
                }
                let ia = self.decrypt_front(len);
                // Step 4.
                let pad_d = self.rng.below(PAD_SEND_BOUND) as usize;
                let start = self.output.len();
                self.output.extend_from_slice(&[0u8; 8]);
                self.output.extend_from_slice(&method.bit().to_be_bytes());
                self.output.extend_from_slice(&(pad_d as u16).to_be_bytes());
                self.output.resize(self.output.len() + pad_d, 0);
                self.encrypt
                    .as_mut()
                    .expect("encrypt cipher")
                    .apply(&mut self.output[start..]);
                let Side::Receiver { found, .. } = &self.side else {
                    unreachable!()
                };
                let info_hash = found.expect("info-hash found before payload");
                self.finish(method, info_hash, ia);
                Ok(Step::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests;
