//! The delivery codecs of `lakehose-formats` (`decompress`, and `compress` for round trips).

use lakehose_formats::{Codec, compress, decompress as decode};

use crate::split_selector;

const CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Zip,
    Codec::Snappy,
    Codec::HadoopSnappy,
];

/// Upper bound of the output of decoding `n` bytes, from each format's maximum expansion:
/// deflate at most 1032:1 (a 258-byte match per two 1-bit codes); a Snappy block at most
/// ~21:1 (a 64-byte copy per 3-byte tag), so 32:1 with the framing; a zip archive may point
/// up to `n / 46` central-directory entries (46 bytes each) at the same deflated data.
fn bound(codec: Codec, n: usize) -> usize {
    match codec {
        Codec::None => n,
        Codec::Gzip => 1032 * n,
        Codec::Zip => 1032 * n * (n / 46).max(1),
        Codec::Snappy | Codec::HadoopSnappy => 32 * n,
    }
}

/// Target `decompress`: selector byte (low bits: codec; bit 7: direction), then
/// - decode (bit 7 clear): arbitrary bytes; never panics, output within [`bound`], and the
///   output re-encodes to something that decodes back to it;
/// - encode (bit 7 set): NUL-separated parts are compressed and must decode to their
///   concatenation.
pub fn decompress(data: &[u8]) {
    let _ = run(data);
}

fn run(data: &[u8]) -> Option<()> {
    let (sel, rest) = split_selector(data)?;
    let codec = CODECS[usize::from(sel & 0x7f) % CODECS.len()];
    if sel & 0x80 == 0 {
        let out = decode(codec, rest).ok()?;
        assert!(
            out.len() <= bound(codec, rest.len()),
            "{codec:?}: {} bytes decoded to {}",
            rest.len(),
            out.len()
        );
        let packed = compress(codec, &[&out], "entry").expect("compress into memory");
        assert_eq!(decode(codec, &packed).expect("own output decodes"), out);
    } else {
        let parts: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
        let packed = compress(codec, &parts, "fuzz-entry").expect("compress into memory");
        let out = decode(codec, &packed).expect("own output decodes");
        assert_eq!(out, parts.concat(), "{codec:?} round trip");
    }
    Some(())
}
