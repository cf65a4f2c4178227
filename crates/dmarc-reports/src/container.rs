//! What the bytes are, told by their content, and the bounded decompression of gzip and zip.
//!
//! Reporters name and label attachments unreliably (gzip called `.zip`, `application/octet-stream`
//! for everything, trailing bytes after the archive), so only the first bytes decide. Every
//! decompressed byte passes through [`Bounded`], which stops a decompression bomb by total size
//! and by ratio to the compressed size before it costs more than the limit.

use std::io::{self, Cursor, Read};

use flate2::read::GzDecoder;

use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::xml::LimitHit;

/// The kinds of content the parser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Gzip,
    Zip,
    Xml,
    /// An mbox file: a `From ` separator line, then a message.
    Mbox,
    /// Anything else may be an RFC 5322 message; the MIME parser decides.
    Other,
}

pub(crate) fn sniff(bytes: &[u8]) -> Sniffed {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Sniffed::Gzip;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Sniffed::Zip;
    }
    if bytes.starts_with(b"From ") {
        return Sniffed::Mbox;
    }
    let text = bytes.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| text[i] == b'<') {
        return Sniffed::Xml;
    }
    Sniffed::Other
}

/// Counts decompressed bytes and fails the read once a limit is passed.
pub(crate) struct Bounded<R> {
    inner: R,
    produced: u64,
    compressed: u64,
    limits: Limits,
}

impl<R: Read> Bounded<R> {
    pub(crate) fn new(inner: R, compressed: u64, limits: &Limits) -> Self {
        Bounded {
            inner,
            produced: 0,
            compressed: compressed.max(1),
            limits: limits.clone(),
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        let limits = &self.limits;
        if self.produced > limits.max_decompressed_bytes {
            return Err(io::Error::other(LimitHit(
                Rejection::DecompressedTooLarge {
                    limit: limits.max_decompressed_bytes,
                },
            )));
        }
        if self.produced > limits.ratio_grace_bytes
            && self.produced / self.compressed > limits.max_compression_ratio
        {
            return Err(io::Error::other(LimitHit(
                Rejection::CompressionRatioTooHigh {
                    limit: limits.max_compression_ratio,
                },
            )));
        }
        Ok(n)
    }
}

/// The decompressed content of a gzip member, streaming. Bytes after the first member (some
/// reporters append padding or a second copy) are not read.
pub(crate) fn gunzip<'a>(bytes: &'a [u8], limits: &Limits) -> Bounded<GzDecoder<&'a [u8]>> {
    Bounded::new(GzDecoder::new(bytes), bytes.len() as u64, limits)
}

/// Streams the zip archive's one report member into `read`.
///
/// The archive's central directory names the members; when trailing bytes hide it, the members
/// are read from their local headers instead. The report is the only file, or the only `.xml`
/// file when there are several.
pub(crate) fn with_zip_member<T>(
    bytes: &[u8],
    limits: &Limits,
    read: impl FnOnce(&mut dyn Read) -> Result<T, Rejection>,
) -> Result<T, Rejection> {
    match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(mut archive) => {
            let mut files = Vec::new();
            for index in 0..archive.len() {
                let file = archive.by_index_raw(index).map_err(zip_rejection)?;
                if file.is_file() {
                    files.push((index, file.name().unwrap_or_default().into_owned()));
                }
            }
            let index = choose_member(&files)?;
            let file = archive.by_index(index).map_err(zip_rejection)?;
            read_member(file, limits, read)
        }
        Err(_) => {
            // No readable central directory (often trailing bytes): read the local headers.
            // Reporters send one member, so the first file is the report.
            let mut cursor = Cursor::new(bytes);
            loop {
                match zip::read::read_zipfile_from_stream(&mut cursor).map_err(zip_rejection)? {
                    Some(file) if file.is_file() => return read_member(file, limits, read),
                    Some(_) => continue,
                    None => return Err(Rejection::ZipEmpty),
                }
            }
        }
    }
}

fn is_report_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".xml")
}

fn names(files: &[(usize, String)]) -> String {
    files
        .iter()
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn choose_member(files: &[(usize, String)]) -> Result<usize, Rejection> {
    match files {
        [] => Err(Rejection::ZipEmpty),
        [(index, _)] => Ok(*index),
        _ => {
            let mut xml = files.iter().filter(|(_, name)| is_report_name(name));
            match (xml.next(), xml.next()) {
                (Some((index, _)), None) => Ok(*index),
                _ => Err(Rejection::ZipAmbiguous {
                    count: files.len(),
                    names: names(files),
                }),
            }
        }
    }
}

fn read_member<R: Read, T>(
    file: zip::read::ZipFile<'_, R>,
    limits: &Limits,
    read: impl FnOnce(&mut dyn Read) -> Result<T, Rejection>,
) -> Result<T, Rejection> {
    if file.encrypted() {
        return Err(Rejection::ZipUnsupported {
            detail: "the member is encrypted".to_owned(),
        });
    }
    let compressed = file.compressed_size();
    read(&mut Bounded::new(file, compressed, limits))
}

fn zip_rejection(error: zip::result::ZipError) -> Rejection {
    match error {
        zip::result::ZipError::UnsupportedArchive(detail) => Rejection::ZipUnsupported {
            detail: detail.to_string(),
        },
        other => Rejection::Corrupt {
            container: "zip",
            detail: other.to_string(),
        },
    }
}
