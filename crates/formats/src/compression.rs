//! Compression codecs of raw (concatenated) delivery, each producing exactly what the standard
//! tools read (`gunzip`, `unzip`, python-snappy's framed stream reader, Hadoop's `SnappyCodec`).

use std::io::Write;

/// Compression of a delivered object's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Bytes as they are.
    None,
    /// gzip (RFC 1952), one member.
    Gzip,
    /// A zip archive holding one deflated entry named after the object.
    Zip,
    /// Snappy's framing format (`sNaPpY` stream identifier, CRC-checked chunks).
    Snappy,
    /// Hadoop's block Snappy stream: `[u32 BE raw len][u32 BE compressed len][snappy block]`...
    HadoopSnappy,
}

/// A codec failed (only I/O into memory buffers, so only on internal errors).
#[derive(Debug, thiserror::Error)]
#[error("compression failed: {0}")]
pub struct CompressError(String);

/// Hadoop's default Snappy buffer size: each block compresses at most this many input bytes.
const HADOOP_SNAPPY_BLOCK: usize = 256 * 1024;

/// Compresses `parts` (concatenated in order) with `codec`. `entry_name` names the single zip
/// entry and is ignored by the other codecs.
pub fn compress(codec: Codec, parts: &[&[u8]], entry_name: &str) -> Result<Vec<u8>, CompressError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let err = |e: std::io::Error| CompressError(e.to_string());
    match codec {
        Codec::None => Ok(parts.concat()),
        Codec::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(total / 4),
                flate2::Compression::default(),
            );
            for p in parts {
                enc.write_all(p).map_err(err)?;
            }
            enc.finish().map_err(err)
        }
        Codec::Zip => {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(total / 4)));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(total as u64 >= u32::MAX as u64);
            zip.start_file(entry_name, options)
                .map_err(|e| CompressError(e.to_string()))?;
            for p in parts {
                zip.write_all(p).map_err(err)?;
            }
            let cursor = zip.finish().map_err(|e| CompressError(e.to_string()))?;
            Ok(cursor.into_inner())
        }
        Codec::Snappy => {
            let mut enc = snap::write::FrameEncoder::new(Vec::with_capacity(total / 2));
            for p in parts {
                enc.write_all(p).map_err(err)?;
            }
            enc.into_inner().map_err(|e| CompressError(e.to_string()))
        }
        Codec::HadoopSnappy => {
            let joined = parts.concat();
            let mut out = Vec::with_capacity(total / 2);
            let mut encoder = snap::raw::Encoder::new();
            for block in joined.chunks(HADOOP_SNAPPY_BLOCK) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| CompressError(e.to_string()))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

/// Reverses [`compress`] (used by tests and by `lakehose` tools that read objects back).
pub fn decompress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CompressError> {
    use std::io::Read;
    let err = |e: std::io::Error| CompressError(e.to_string());
    let mut out = Vec::new();
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(err)?;
        }
        Codec::Zip => {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data))
                .map_err(|e| CompressError(e.to_string()))?;
            for i in 0..archive.len() {
                let mut file = archive
                    .by_index(i)
                    .map_err(|e| CompressError(e.to_string()))?;
                file.read_to_end(&mut out).map_err(err)?;
            }
        }
        Codec::Snappy => {
            snap::read::FrameDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(err)?;
        }
        Codec::HadoopSnappy => {
            let mut rest = data;
            let mut decoder = snap::raw::Decoder::new();
            while rest.len() >= 8 {
                let raw_len =
                    u32::from_be_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
                let comp_len =
                    u32::from_be_bytes(rest[4..8].try_into().unwrap_or_default()) as usize;
                let block = rest
                    .get(8..8 + comp_len)
                    .ok_or_else(|| CompressError("truncated hadoop-snappy block".into()))?;
                // `decompress_vec` allocates the length the block declares before decoding:
                // refuse a declaration that differs from the Hadoop header's or that no block
                // of this size can reach (Snappy expands at most ~21x), so a 13-byte input
                // cannot demand a 4 GiB buffer.
                let declared =
                    snap::raw::decompress_len(block).map_err(|e| CompressError(e.to_string()))?;
                if declared != raw_len || raw_len > comp_len.saturating_mul(32) {
                    return Err(CompressError("hadoop-snappy block length mismatch".into()));
                }
                let raw = decoder
                    .decompress_vec(block)
                    .map_err(|e| CompressError(e.to_string()))?;
                if raw.len() != raw_len {
                    return Err(CompressError("hadoop-snappy block length mismatch".into()));
                }
                out.extend_from_slice(&raw);
                rest = &rest[8 + comp_len..];
            }
            if !rest.is_empty() {
                return Err(CompressError(
                    "trailing bytes after hadoop-snappy blocks".into(),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let parts: [&[u8]; 3] = [b"{\"a\":1}", b"", &big];
        let expected = parts.concat();
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Zip,
            Codec::Snappy,
            Codec::HadoopSnappy,
        ] {
            let packed = compress(codec, &parts, "entry").unwrap();
            assert_eq!(decompress(codec, &packed).unwrap(), expected, "{codec:?}");
            if codec != Codec::None {
                assert!(packed.len() < expected.len(), "{codec:?} did not compress");
            }
        }
    }

    #[test]
    fn framing_is_standard() {
        let gz = compress(Codec::Gzip, &[b"x"], "e").unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let sn = compress(Codec::Snappy, &[b"x"], "e").unwrap();
        assert_eq!(&sn[..10], b"\xff\x06\x00\x00sNaPpY");
        let zp = compress(Codec::Zip, &[b"x"], "e").unwrap();
        assert_eq!(&zp[..4], b"PK\x03\x04");
    }
}
