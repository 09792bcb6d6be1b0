//! Encryption at rest for Lakehose: envelope encryption with AES-256-GCM (`ring`).
//!
//! - A [`Keyring`] holds **master keys** (32 random bytes each, named by an id) loaded from a
//!   keyring file or the `LAKEHOSE_MASTER_KEY` environment variable. Master keys never encrypt
//!   data; they only wrap data keys. The *active* key (the last one, or the one named by
//!   `active = "ID"`) wraps new data keys; every other key only unwraps, which is what keeps
//!   data written before a rotation readable.
//! - A [`DataKey`] is 32 fresh random bytes made for **one** log segment or **one** object. It is
//!   stored next to the data it protects, wrapped (AES-256-GCM) by a master key: a
//!   [`WrappedKey`] names its master key id, so [`Keyring::unwrap`] knows which key to use and
//!   fails closed ([`Error::MissingKey`]) when the keyring no longer has it.
//! - [`object`]: the sealed-object format of local buckets (chunked, truncation-proof).
//!
//! # Nonce uniqueness (the invariant AES-GCM's security rests on)
//!
//! A (key, nonce) pair must never encrypt two different plaintexts. Here:
//! - **Wrapping** uses a random 96-bit nonce per wrap. A master key wraps one data key per
//!   segment or object, so even 2^32 wraps under one master key (far beyond any deployment's
//!   count of segments and objects) keep the collision chance below 2^-32.
//! - **Data** is encrypted under a data key that is fresh per segment or object, with a nonce
//!   derived from a counter that never repeats *under that key* ([`nonce`]): the record's
//!   sequence number in a log segment (strictly increasing while the segment is written; a
//!   segment is never appended to again after the log is reopened, so records torn by a crash
//!   are never re-encrypted under the same key with another payload), or the chunk index in an
//!   object (each object gets its own data key, also when the same object key is written again).
//!
//! Every seal takes *associated data* (AAD) that binds the ciphertext to where it belongs
//! (a record's position, an object's header), so moving or reordering ciphertext is detected
//! by [`DataKey::open_in_place`], the same way as tampering or a wrong key.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub mod object;

/// Length of master and data keys (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of a wrapped data key: the encrypted key and its tag.
pub const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;
/// Longest master key id.
pub const MAX_KEY_ID_LEN: usize = 64;
/// The environment variable holding master keys for containers: `ID:BASE64KEY`, several
/// separated by commas (the last is active).
pub const MASTER_KEY_ENV: &str = "LAKEHOSE_MASTER_KEY";

/// Why a key or a ciphertext cannot be used. Every failure is final: callers fail closed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The keyring has no master key with this id (removed from the keyring, or never added).
    #[error(
        "master key '{0}' is not in the keyring (add it back to the keyring file or {MASTER_KEY_ENV})"
    )]
    MissingKey(String),
    /// Authentication failed: the ciphertext or its associated data were changed, or a
    /// different key of the same id was used.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// A keyring file or value that cannot be used.
    #[error("invalid keyring: {0}")]
    Keyring(String),
    /// Bytes that are not in the expected format.
    #[error("malformed encrypted data: {0}")]
    Malformed(String),
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The 96-bit nonce for counter value `counter` in lane `lane`: `counter` (8 bytes,
/// little-endian) then `lane` (4 bytes, little-endian). Unique per data key as long as each
/// (counter, lane) pair is used once per key (see the crate docs).
pub fn nonce(counter: u64, lane: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n[8..].copy_from_slice(&lane.to_le_bytes());
    n
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::Random)?;
    Ok(out)
}

fn aes_key(raw: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("32 bytes is an AES-256 key"))
}

/// A data key: encrypts one segment's records or one object's chunks.
#[derive(Clone)]
pub struct DataKey {
    raw: [u8; KEY_LEN],
    key: LessSafeKey,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<DataKey> {
        Ok(DataKey::from_bytes(random::<KEY_LEN>()?))
    }

    fn from_bytes(raw: [u8; KEY_LEN]) -> DataKey {
        DataKey {
            key: aes_key(&raw),
            raw,
        }
    }

    /// Encrypts `buf` in place and returns the tag to store after it.
    pub fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| Error::Malformed("plaintext too long for AES-GCM".into()))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `buf` (ciphertext followed by its tag) in place; returns the plaintext, the
    /// first `buf.len() - TAG_LEN` bytes. Fails if anything (ciphertext, tag, `aad`, nonce,
    /// key) differs from what was sealed.
    pub fn open_in_place<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8]> {
        if buf.len() < TAG_LEN {
            return Err(Error::Malformed("ciphertext shorter than its tag".into()));
        }
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| {
                Error::Authentication(
                    "the data was changed, moved, or encrypted with another key".into(),
                )
            })
    }
}

/// A data key encrypted by a master key, as stored next to the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// Id of the master key that wrapped it.
    pub master_key_id: String,
    /// The random nonce of the wrap.
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted data key and its tag.
    pub ciphertext: [u8; WRAPPED_LEN],
}

impl WrappedKey {
    /// Length of [`WrappedKey::encode`]'s output for a key id of `id_len` bytes.
    pub fn encoded_len(id_len: usize) -> usize {
        1 + id_len + NONCE_LEN + WRAPPED_LEN
    }

    /// Appends `id_len u8 | id | nonce | ciphertext`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.master_key_id.len() as u8);
        out.extend_from_slice(self.master_key_id.as_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
    }

    /// Decodes what [`WrappedKey::encode`] wrote at the start of `bytes`; returns it and its
    /// length.
    pub fn decode(bytes: &[u8]) -> Result<(WrappedKey, usize)> {
        let short = || Error::Malformed("wrapped key is truncated".into());
        let id_len = usize::from(*bytes.first().ok_or_else(short)?);
        let len = WrappedKey::encoded_len(id_len);
        let b = bytes.get(..len).ok_or_else(short)?;
        let id = std::str::from_utf8(&b[1..1 + id_len])
            .ok()
            .filter(|id| valid_key_id(id))
            .ok_or_else(|| Error::Malformed("wrapped key names an invalid master key id".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[1 + id_len..1 + id_len + NONCE_LEN]);
        let mut ciphertext = [0u8; WRAPPED_LEN];
        ciphertext.copy_from_slice(&b[1 + id_len + NONCE_LEN..]);
        Ok((
            WrappedKey {
                master_key_id: id.to_string(),
                nonce,
                ciphertext,
            },
            len,
        ))
    }
}

/// Whether `id` may name a master key: 1 to 64 of `[A-Za-z0-9_.-]`, not `active`.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id != "active"
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The keyring key a KMS key ARN names: the last path segment of
/// `arn:aws:kms:REGION:ACCOUNT:key/KEYID` (`KEYID`), when it is a valid key id.
pub fn key_id_from_arn(arn: &str) -> Option<&str> {
    let (_, id) = arn.strip_prefix("arn:")?.rsplit_once(":key/")?;
    valid_key_id(id).then_some(id)
}

struct MasterKey {
    id: String,
    raw: [u8; KEY_LEN],
    key: LessSafeKey,
}

/// Master keys by id; one of them is active (wraps new data keys).
pub struct Keyring {
    keys: Vec<MasterKey>,
    active: usize,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("active", &self.active_id())
            .finish()
    }
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.active == other.active
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.id == b.id && a.raw == b.raw)
    }
}

impl Eq for Keyring {}

/// Prefix of the associated data of every wrap: a wrapped key cannot pass for anything else.
const WRAP_DOMAIN: &[u8] = b"lakehose-wrap-v1";

fn wrap_aad(master_key_id: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + 1 + master_key_id.len() + context.len());
    aad.extend_from_slice(WRAP_DOMAIN);
    aad.push(master_key_id.len() as u8);
    aad.extend_from_slice(master_key_id.as_bytes());
    aad.extend_from_slice(context);
    aad
}

impl Keyring {
    /// A keyring of `keys` (id, 32 bytes) in order; `active` names the active key, else the
    /// last one is.
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>, active: Option<&str>) -> Result<Keyring> {
        let mut out: Vec<MasterKey> = Vec::with_capacity(keys.len());
        for (id, raw) in keys {
            if !valid_key_id(&id) {
                return Err(Error::Keyring(format!(
                    "'{id}' is not a valid key id (1-{MAX_KEY_ID_LEN} of A-Z a-z 0-9 _ . -, not 'active')"
                )));
            }
            if out.iter().any(|k| k.id == id) {
                return Err(Error::Keyring(format!("key id '{id}' appears twice")));
            }
            out.push(MasterKey {
                key: aes_key(&raw),
                id,
                raw,
            });
        }
        if out.is_empty() {
            return Err(Error::Keyring("the keyring has no keys".into()));
        }
        let active = match active {
            Some(id) => out.iter().position(|k| k.id == id).ok_or_else(|| {
                Error::Keyring(format!("active = '{id}' names no key of the keyring"))
            })?,
            None => out.len() - 1,
        };
        Ok(Keyring { keys: out, active })
    }

    /// Parses a keyring file: one `ID = "BASE64"` line per key (32 bytes once decoded; quotes
    /// optional), blank lines and `#` comments allowed, and optionally `active = "ID"`. This is
    /// also valid TOML. Without `active`, the **last** key is active.
    pub fn parse(text: &str) -> Result<Keyring> {
        let mut keys = Vec::new();
        let mut active = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| Error::Keyring(format!("line {}: {what}", n + 1));
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected ID = \"BASE64KEY\""))?;
            let name = unquote(name.trim());
            let value = unquote(value.trim());
            if name == "active" {
                active = Some(value.to_string());
                continue;
            }
            let raw = decode_key(value).map_err(|e| bad(&e))?;
            keys.push((name.to_string(), raw));
        }
        Keyring::new(keys, active.as_deref())
    }

    /// Reads and parses a keyring file (see [`Keyring::parse`]).
    pub fn load(path: &Path) -> Result<Keyring> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Keyring(format!("reading {}: {e}", path.display())))?;
        Keyring::parse(&text).map_err(|e| Error::Keyring(format!("{}: {e}", path.display())))
    }

    /// Parses the value of [`MASTER_KEY_ENV`]: `ID:BASE64KEY`, or several separated by commas
    /// (the last is active).
    pub fn from_env_value(value: &str) -> Result<Keyring> {
        let mut keys = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, key) = item.split_once(':').ok_or_else(|| {
                Error::Keyring(format!("{MASTER_KEY_ENV}: expected ID:BASE64KEY"))
            })?;
            let raw = decode_key(key.trim())
                .map_err(|e| Error::Keyring(format!("{MASTER_KEY_ENV}: key '{id}': {e}")))?;
            keys.push((id.trim().to_string(), raw));
        }
        Keyring::new(keys, None)
    }

    /// The id of the key that wraps new data keys.
    pub fn active_id(&self) -> &str {
        &self.keys[self.active].id
    }

    /// Whether the keyring has a key `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// The key ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn key(&self, id: &str) -> Result<&MasterKey> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::MissingKey(id.to_string()))
    }

    /// Wraps `data_key` with master key `master_key_id`; `context` (where the data key will be
    /// used, e.g. a segment's identity) must be given again to unwrap it.
    pub fn wrap(
        &self,
        master_key_id: &str,
        data_key: &DataKey,
        context: &[u8],
    ) -> Result<WrappedKey> {
        let master = self.key(master_key_id)?;
        let nonce = random::<NONCE_LEN>()?;
        let mut ciphertext = [0u8; WRAPPED_LEN];
        ciphertext[..KEY_LEN].copy_from_slice(&data_key.raw);
        let tag = master
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(master_key_id, context)),
                &mut ciphertext[..KEY_LEN],
            )
            .map_err(|_| Error::Malformed("cannot wrap the data key".into()))?;
        ciphertext[KEY_LEN..].copy_from_slice(tag.as_ref());
        Ok(WrappedKey {
            master_key_id: master_key_id.to_string(),
            nonce,
            ciphertext,
        })
    }

    /// Unwraps a data key. Fails closed: [`Error::MissingKey`] when its master key is not in
    /// the keyring, [`Error::Authentication`] when the key of that id is a different key or
    /// the wrapped key or `context` was changed.
    pub fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        let master = self.key(&wrapped.master_key_id)?;
        let mut buf = wrapped.ciphertext;
        let raw = master
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(wrapped.nonce),
                Aad::from(wrap_aad(&wrapped.master_key_id, context)),
                &mut buf,
            )
            .map_err(|_| {
                Error::Authentication(format!(
                    "the data key cannot be unwrapped with master key '{}': the keyring holds a \
                     different key under that id, or the stored key was changed",
                    wrapped.master_key_id
                ))
            })?;
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(raw);
        Ok(DataKey::from_bytes(out))
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn decode_key(b64: &str) -> std::result::Result<[u8; KEY_LEN], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the key is not base64: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "a key must be {KEY_LEN} bytes once decoded, this one is {}",
            b.len()
        )
    })
}

/// A new random master key as a keyring file line, `ID = "BASE64"` (what `lakehose keygen`
/// prints).
pub fn generate_key_line(id: &str) -> Result<String> {
    if !valid_key_id(id) {
        return Err(Error::Keyring(format!("'{id}' is not a valid key id")));
    }
    let raw = random::<KEY_LEN>()?;
    Ok(format!(
        "{id} = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(ids: &[&str]) -> Keyring {
        let lines: Vec<String> = ids
            .iter()
            .map(|id| generate_key_line(id).unwrap())
            .collect();
        Keyring::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn seal_open_round_trip() {
        let k = DataKey::generate().unwrap();
        let mut buf = b"hello, lakehose".to_vec();
        let tag = k.seal_in_place(nonce(7, 0), b"aad", &mut buf).unwrap();
        assert_ne!(&buf[..], b"hello, lakehose");
        buf.extend_from_slice(&tag);
        let plain = k.open_in_place(nonce(7, 0), b"aad", &mut buf).unwrap();
        assert_eq!(plain, b"hello, lakehose");
    }

    #[test]
    fn tampering_wrong_aad_nonce_or_key_fail() {
        let k = DataKey::generate().unwrap();
        let mut sealed = b"secret record".to_vec();
        let tag = k.seal_in_place(nonce(1, 0), b"pos-1", &mut sealed).unwrap();
        sealed.extend_from_slice(&tag);
        for i in 0..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 1;
            assert!(
                matches!(
                    k.open_in_place(nonce(1, 0), b"pos-1", &mut b),
                    Err(Error::Authentication(_))
                ),
                "flip in byte {i} not detected"
            );
        }
        let mut b = sealed.clone();
        assert!(k.open_in_place(nonce(1, 0), b"pos-2", &mut b).is_err());
        let mut b = sealed.clone();
        assert!(k.open_in_place(nonce(2, 0), b"pos-1", &mut b).is_err());
        let other = DataKey::generate().unwrap();
        let mut b = sealed.clone();
        assert!(other.open_in_place(nonce(1, 0), b"pos-1", &mut b).is_err());
        let mut short = vec![0u8; TAG_LEN - 1];
        assert!(matches!(
            k.open_in_place(nonce(1, 0), b"", &mut short),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn wrap_unwrap_and_context() {
        let ring = ring_of(&["k1"]);
        let dk = DataKey::generate().unwrap();
        let w = ring.wrap("k1", &dk, b"segment-0").unwrap();
        assert_eq!(w.master_key_id, "k1");
        let back = ring.unwrap(&w, b"segment-0").unwrap();
        assert_eq!(back.raw, dk.raw);
        assert!(matches!(
            ring.unwrap(&w, b"segment-1"),
            Err(Error::Authentication(_))
        ));
        let mut bad = w.clone();
        bad.ciphertext[3] ^= 0x40;
        assert!(matches!(
            ring.unwrap(&bad, b"segment-0"),
            Err(Error::Authentication(_))
        ));
        // Encoding round trip.
        let mut enc = Vec::new();
        w.encode(&mut enc);
        assert_eq!(enc.len(), WrappedKey::encoded_len(2));
        let (dec, len) = WrappedKey::decode(&enc).unwrap();
        assert_eq!((dec, len), (w, enc.len()));
        assert!(WrappedKey::decode(&enc[..enc.len() - 1]).is_err());
    }

    #[test]
    fn rotation_keeps_old_data_readable() {
        let old = ring_of(&["2024"]);
        let dk = DataKey::generate().unwrap();
        let w = old.wrap(old.active_id(), &dk, b"ctx").unwrap();
        // A new key is added after the old one: it becomes active, the old one still unwraps.
        let line_old = "2024 = \"".to_string()
            + &base64::engine::general_purpose::STANDARD.encode(old.keys[0].raw)
            + "\"";
        let rotated = Keyring::parse(&format!(
            "{line_old}\n{}",
            generate_key_line("2025").unwrap()
        ))
        .unwrap();
        assert_eq!(rotated.active_id(), "2025");
        assert_eq!(rotated.unwrap(&w, b"ctx").unwrap().raw, dk.raw);
        let w2 = rotated.wrap(rotated.active_id(), &dk, b"ctx").unwrap();
        assert_eq!(w2.master_key_id, "2025");
        // The old keyring cannot read what the new key wrapped: fails closed, clearly.
        let err = old.unwrap(&w2, b"ctx").unwrap_err();
        assert_eq!(err, Error::MissingKey("2025".into()));
        assert!(
            err.to_string().contains("'2025' is not in the keyring"),
            "{err}"
        );
    }

    #[test]
    fn a_different_key_under_the_same_id_fails_closed() {
        let a = ring_of(&["k"]);
        let b = ring_of(&["k"]);
        let w = a.wrap("k", &DataKey::generate().unwrap(), b"").unwrap();
        let err = b.unwrap(&w, b"").unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err}");
    }

    #[test]
    fn keyring_file_and_env_formats() {
        let l1 = generate_key_line("one").unwrap();
        let l2 = generate_key_line("two").unwrap();
        let text = format!("# keys\n\n{l1}\n{l2}\n");
        assert_eq!(Keyring::parse(&text).unwrap().active_id(), "two");
        let pinned = Keyring::parse(&format!("active = \"one\"\n{text}")).unwrap();
        assert_eq!(pinned.active_id(), "one");
        assert_eq!(pinned.ids().collect::<Vec<_>>(), ["one", "two"]);
        // Unquoted values work too.
        let unquoted = l1.replace('"', "");
        assert!(Keyring::parse(&unquoted).unwrap().contains("one"));
        for bad in [
            "".to_string(),
            "k = \"c2hvcnQ=\"".to_string(),
            "k = \"not base64!\"".to_string(),
            "just a line".to_string(),
            format!("{l1}\n{l1}"),
            format!("active = \"nope\"\n{l1}"),
            l1.replace("one", "bad/id"),
        ] {
            assert!(Keyring::parse(&bad).is_err(), "{bad:?} accepted");
        }
        let b64 = |l: &str| unquote(l.split_once(" = ").unwrap().1).to_string();
        let env = Keyring::from_env_value(&format!("one:{},two:{}", b64(&l1), b64(&l2))).unwrap();
        assert_eq!(env.active_id(), "two");
        assert_eq!(env, Keyring::parse(&text).unwrap());
        assert!(Keyring::from_env_value("one").is_err());
        assert!(Keyring::from_env_value("").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Keyring::load(&path).unwrap().active_id(), "two");
        assert!(Keyring::load(&dir.path().join("missing")).is_err());
        // Debug never shows key material.
        let dbg = format!("{env:?}");
        assert!(!dbg.contains(&b64(&l1)), "{dbg}");
    }

    #[test]
    fn arn_names_a_keyring_key() {
        assert_eq!(
            key_id_from_arn("arn:aws:kms:us-east-1:123456789012:key/my-key_1"),
            Some("my-key_1")
        );
        assert_eq!(key_id_from_arn("arn:aws:kms:us-east-1:1:alias/x"), None);
        assert_eq!(key_id_from_arn("arn:aws:kms:us-east-1:1:key/"), None);
        assert_eq!(key_id_from_arn("key/x"), None);
    }
}
