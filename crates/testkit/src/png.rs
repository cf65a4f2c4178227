//! Reading the pixels of a browser's PNG screenshot, so a test can check that a chart is
//! really drawn (its colours cover some area), not only that its element exists.
//!
//! Only what Chromium writes is read: 8-bit RGB or RGBA, not interlaced.

use std::io::Read;

/// How many pixels of `png` are within `tolerance` (per channel) of `rgb`.
///
/// # Panics
/// When `png` is not an 8-bit RGB(A) non-interlaced PNG.
pub fn count_pixels_near(png: &[u8], rgb: [u8; 3], tolerance: u8) -> usize {
    let (width, channels, pixels) = decode(png);
    let row_bytes = width * channels;
    pixels
        .chunks(row_bytes)
        .flat_map(|row| row.chunks(channels))
        .filter(|pixel| (0..3).all(|c| pixel[c].abs_diff(rgb[c]) <= tolerance))
        .count()
}

/// The width, bytes per pixel and unfiltered pixel rows of `png`.
fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut at = 8;
    let (mut width, mut height, mut channels) = (0, 0, 0);
    let mut compressed = Vec::new();
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "only 8-bit PNGs are read");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other} is not read"),
                };
                assert_eq!(data[12], 0, "interlaced PNGs are not read");
            }
            b"IDAT" => compressed.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length;
    }
    let mut filtered = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut filtered)
        .expect("PNG image data inflates");
    let row_bytes = width * channels;
    let mut pixels = vec![0u8; row_bytes * height];
    for y in 0..height {
        let line = &filtered[y * (row_bytes + 1)..(y + 1) * (row_bytes + 1)];
        let (filter, line) = (line[0], &line[1..]);
        for x in 0..row_bytes {
            let left = if x >= channels {
                pixels[y * row_bytes + x - channels]
            } else {
                0
            };
            let up = if y > 0 {
                pixels[(y - 1) * row_bytes + x]
            } else {
                0
            };
            let up_left = if y > 0 && x >= channels {
                pixels[(y - 1) * row_bytes + x - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => panic!("PNG filter {other} is not valid"),
            };
            pixels[y * row_bytes + x] = line[x].wrapping_add(predicted);
        }
    }
    (width, channels, pixels)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&[0; 4]); // the CRC is not checked
        chunk
    }

    #[test]
    fn pixels_are_counted_through_the_row_filters() {
        // 2×2 RGB: row 1 unfiltered (red, green), row 2 "up" (the same again, as zeros).
        let rows = [0, 200, 0, 0, 0, 200, 0, 2, 0, 0, 0, 0, 0, 0];
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&rows).unwrap();
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]));
        png.extend(chunk(b"IDAT", &zlib.finish().unwrap()));
        png.extend(chunk(b"IEND", &[]));
        assert_eq!(count_pixels_near(&png, [200, 0, 0], 0), 2);
        assert_eq!(count_pixels_near(&png, [0, 190, 0], 10), 2);
        assert_eq!(count_pixels_near(&png, [0, 0, 200], 10), 0);
    }
}
