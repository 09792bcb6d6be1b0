//! Sealed objects: how objects of local buckets are stored when their destination has a
//! `KMSEncryptionConfig` (what `lakehose decrypt` reads).
//!
//! ```text
//! header
//!   0  magic       8  b"LHENC\0\0\x01"
//!   8  chunk_size  4  u32 LE, plaintext bytes per chunk (every chunk but the last is full)
//!  12  wrapped key    id_len u8 | master key id | wrap nonce (12) | wrapped data key (48)
//! chunks, one after the other
//!      ciphertext of min(chunk_size, rest) plaintext bytes | tag (16)
//! ```
//!
//! Each object has its own fresh data key (wrapped with the context `lakehose-object`), so
//! chunk `i` uses nonce `(i, 0)` ([`crate::nonce`]) without ever repeating under a key. The
//! associated data of chunk `i` is `header | i u64 LE | final u8` (`final` = 1 on the last
//! chunk only): changing the header, reordering chunks, dropping the last chunks
//! (truncation) or appending any are all detected. An empty object is one final chunk of
//! zero bytes (just a tag).

use crate::{DataKey, Error, Keyring, Result, TAG_LEN, WrappedKey, nonce};

/// Magic bytes at the start of every sealed object.
pub const MAGIC: [u8; 8] = *b"LHENC\0\0\x01";
/// Plaintext bytes per chunk written by [`seal`].
pub const CHUNK_SIZE: u32 = 64 * 1024;
/// The longest header (a 64-byte master key id).
pub const MAX_HEADER_LEN: usize =
    12 + 1 + crate::MAX_KEY_ID_LEN + crate::NONCE_LEN + crate::WRAPPED_LEN;
/// Context of the wrap of every object's data key.
const WRAP_CONTEXT: &[u8] = b"lakehose-object";

/// Whether `bytes` (the start of an object) is a sealed object.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A parsed sealed-object header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of the header; the first chunk starts here.
    pub len: usize,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The object's wrapped data key.
    pub wrapped: WrappedKey,
}

impl Header {
    /// The plaintext length of a sealed object of `sealed_len` bytes with this header, if that
    /// length is possible.
    pub fn plaintext_len(&self, sealed_len: u64) -> Option<u64> {
        let body = sealed_len.checked_sub(self.len as u64)?;
        let per = u64::from(self.chunk_size) + TAG_LEN as u64;
        let chunks = body.div_ceil(per).max(1);
        let plain = body.checked_sub(chunks * TAG_LEN as u64)?;
        // Every chunk holds at least its tag; the last may be short (or empty if alone).
        (body > (chunks - 1) * per || chunks == 1).then_some(plain)
    }
}

/// Parses the header at the start of `bytes` (at least [`MAX_HEADER_LEN`] bytes, or the
/// whole object when shorter).
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    if !is_sealed(bytes) {
        return Err(Error::Malformed("not a sealed object (bad magic)".into()));
    }
    let chunk_size = bytes
        .get(8..12)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .filter(|&c| c > 0)
        .ok_or_else(|| Error::Malformed("sealed object header is truncated or invalid".into()))?;
    let (wrapped, wlen) = WrappedKey::decode(&bytes[12..])?;
    Ok(Header {
        len: 12 + wlen,
        chunk_size,
        wrapped,
    })
}

fn chunk_aad(header: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 9);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&index.to_le_bytes());
    aad.push(u8::from(last));
    aad
}

/// Seals the concatenation of `parts` under a fresh data key wrapped by master key
/// `master_key_id` of `keyring`.
pub fn seal(keyring: &Keyring, master_key_id: &str, parts: &[&[u8]]) -> Result<Vec<u8>> {
    seal_with_chunk_size(keyring, master_key_id, parts, CHUNK_SIZE)
}

fn seal_with_chunk_size(
    keyring: &Keyring,
    master_key_id: &str,
    parts: &[&[u8]],
    chunk_size: u32,
) -> Result<Vec<u8>> {
    let data_key = DataKey::generate()?;
    let wrapped = keyring.wrap(master_key_id, &data_key, WRAP_CONTEXT)?;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let chunk = chunk_size as usize;
    let chunks = total.div_ceil(chunk).max(1);
    let mut out = Vec::with_capacity(MAX_HEADER_LEN + total + chunks * TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&chunk_size.to_le_bytes());
    wrapped.encode(&mut out);
    let header_len = out.len();
    // Copy the plaintext behind the header, then seal each chunk in place.
    let mut plain = Vec::with_capacity(total);
    for p in parts {
        plain.extend_from_slice(p);
    }
    for i in 0..chunks {
        let start = i * chunk;
        let end = (start + chunk).min(total);
        let last = i + 1 == chunks;
        let at = out.len();
        out.extend_from_slice(&plain[start..end]);
        let aad = chunk_aad(&out[..header_len], i as u64, last);
        let tag = data_key.seal_in_place(nonce(i as u64, 0), &aad, &mut out[at..])?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Opens a sealed object: the plaintext, or an error if the master key is missing
/// ([`Error::MissingKey`]), or anything was changed, reordered or cut off
/// ([`Error::Authentication`], [`Error::Malformed`]).
pub fn open(keyring: &Keyring, sealed: &[u8]) -> Result<Vec<u8>> {
    let header = parse_header(sealed)?;
    let data_key = keyring.unwrap(&header.wrapped, WRAP_CONTEXT)?;
    let head = &sealed[..header.len];
    let per = header.chunk_size as usize + TAG_LEN;
    let mut body = &sealed[header.len..];
    let mut out = Vec::with_capacity(body.len());
    let mut index = 0u64;
    loop {
        let take = body.len().min(per);
        let last = take == body.len();
        if take < TAG_LEN {
            return Err(Error::Malformed("sealed object is truncated".into()));
        }
        let mut buf = body[..take].to_vec();
        let aad = chunk_aad(head, index, last);
        let plain = data_key
            .open_in_place(nonce(index, 0), &aad, &mut buf)
            .map_err(|_| {
                Error::Authentication(format!(
                    "chunk {index} of the object failed authentication: the object was changed, \
                     truncated or extended"
                ))
            })?;
        out.extend_from_slice(plain);
        body = &body[take..];
        index += 1;
        if last {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(id: &str) -> Keyring {
        Keyring::parse(&crate::generate_key_line(id).unwrap()).unwrap()
    }

    #[test]
    fn round_trip_at_every_size_around_chunk_boundaries() {
        let ring = keyring("obj");
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 64, 100] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let (a, b) = data.split_at(len / 3);
            let sealed = seal_with_chunk_size(&ring, "obj", &[a, b], 16).unwrap();
            assert!(is_sealed(&sealed));
            let header = parse_header(&sealed).unwrap();
            assert_eq!(
                header.plaintext_len(sealed.len() as u64),
                Some(len as u64),
                "len {len}"
            );
            assert_eq!(open(&ring, &sealed).unwrap(), data, "len {len}");
            if len >= 4 {
                assert!(
                    !sealed.windows(4).any(|w| w == &data[..4]),
                    "plaintext visible"
                );
            }
        }
    }

    #[test]
    fn truncation_extension_reordering_and_tampering_fail() {
        let ring = keyring("obj");
        let data = vec![0x5au8; 40];
        let sealed = seal_with_chunk_size(&ring, "obj", &[&data], 16).unwrap();
        let header = parse_header(&sealed).unwrap();
        let per = 16 + TAG_LEN;
        // Cut at a chunk boundary (drops the last chunk) and anywhere else.
        for cut in [
            sealed.len() - 1,
            header.len + per,
            header.len + 2 * per,
            header.len,
        ] {
            assert!(open(&ring, &sealed[..cut]).is_err(), "cut at {cut}");
        }
        // Swap the first two chunks.
        let mut swapped = sealed[..header.len].to_vec();
        swapped.extend_from_slice(&sealed[header.len + per..header.len + 2 * per]);
        swapped.extend_from_slice(&sealed[header.len..header.len + per]);
        swapped.extend_from_slice(&sealed[header.len + 2 * per..]);
        assert!(open(&ring, &swapped).is_err());
        // Any flipped byte.
        for i in 8..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 0x01;
            assert!(open(&ring, &b).is_err(), "flip at {i} not detected");
        }
        // Extended.
        let mut longer = sealed.clone();
        longer.extend_from_slice(&[0u8; 20]);
        assert!(open(&ring, &longer).is_err());
    }

    #[test]
    fn wrong_or_missing_key_fails_closed() {
        let sealed = seal(&keyring("a"), "a", &[b"payload"]).unwrap();
        assert!(matches!(
            open(&keyring("b"), &sealed),
            Err(Error::MissingKey(id)) if id == "a"
        ));
        assert!(matches!(
            open(&keyring("a"), &sealed),
            Err(Error::Authentication(_))
        ));
        assert!(open(&keyring("a"), b"plain text").is_err());
    }
}
