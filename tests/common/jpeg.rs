// SPDX-License-Identifier: MPL-2.0

//! Synthetic JPEGs: small, distinct per seed, byte-exact, with the SOF size
//! the test asks for (and an EXIF thumbnail variant that fools naive
//! SOI/EOI splitters).

/// Pseudo-random entropy-coded bytes: never 0xFF (so no marker can appear)
/// and never b'-' (so no multipart delimiter can appear by chance).
fn entropy(seed: u32, len: usize) -> Vec<u8> {
    let start = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9);
    xorshift_bytes(start, len, &[0xFF, b'-'])
}

/// `len` pseudo-random bytes (xorshift32 from `state`, top byte of each
/// step) with every byte of `excluded` skipped.
pub fn xorshift_bytes(mut state: u32, len: usize, excluded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let b = (state >> 24) as u8;
        if !excluded.contains(&b) {
            out.push(b);
        }
    }
    out
}

fn push_app0(v: &mut Vec<u8>) {
    v.extend_from_slice(&[
        0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
}

fn push_sof0_sos(v: &mut Vec<u8>, width: u16, height: u16) {
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00,
    ]);
}

/// A small well-formed-looking baseline JPEG (SOI, APP0, COM with the seed,
/// SOF0 with the given size, SOS, entropy bytes, EOI), distinct per seed.
pub fn jpeg(width: u16, height: u16, seed: u32) -> Vec<u8> {
    jpeg_with_len(width, height, seed, 150 + (seed as usize * 37) % 211)
}

/// Like [`jpeg`] with `entropy_len` entropy-coded bytes.
pub fn jpeg_with_len(width: u16, height: u16, seed: u32, entropy_len: usize) -> Vec<u8> {
    jpeg_with_entropy(width, height, seed, &entropy(seed, entropy_len))
}

/// Like [`jpeg`], with the given bytes placed in the middle of the entropy
/// data (they must not contain 0xFF to keep the JPEG valid).
pub fn jpeg_containing(width: u16, height: u16, seed: u32, inner: &[u8]) -> Vec<u8> {
    assert!(!inner.contains(&0xFF));
    let mut e = entropy(seed, 80);
    e.extend_from_slice(inner);
    e.extend_from_slice(&entropy(seed + 1, 80));
    jpeg_with_entropy(width, height, seed, &e)
}

fn jpeg_with_entropy(width: u16, height: u16, seed: u32, entropy: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    push_app0(&mut v);
    let com = format!("frame {seed}");
    v.extend_from_slice(&[0xFF, 0xFE]);
    v.extend_from_slice(&((com.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(com.as_bytes());
    push_sof0_sos(&mut v, width, height);
    v.extend_from_slice(entropy);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// A JPEG whose EXIF APP1 segment carries a thumbnail, itself a complete JPEG
/// (nested FF D8 .. FF D9): a naive SOI/EOI splitter cuts it in the wrong place.
pub fn jpeg_with_exif_thumbnail(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let thumb = jpeg(16, 12, seed ^ 0x5A5A);
    let mut app1 = Vec::new();
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    app1.extend_from_slice(&[0, 0]); // IFD0 with zero entries
    app1.extend_from_slice(&thumb);
    app1.extend_from_slice(&[0, 0, 0, 0]);
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    v.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(&app1);
    push_app0(&mut v);
    push_sof0_sos(&mut v, width, height);
    v.extend_from_slice(&entropy(seed, 120 + seed as usize % 50));
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// `n` distinct frames of one size, seeds starting at `seed`.
pub fn frames(n: usize, width: u16, height: u16, seed: u32) -> Vec<Vec<u8>> {
    (0..n as u32)
        .map(|i| jpeg(width, height, seed + i))
        .collect()
}

/// Whether `data` is one whole JPEG (SOI ... EOI).
pub fn is_jpeg(data: &[u8]) -> bool {
    data.len() > 4 && data.starts_with(&[0xFF, 0xD8]) && data.ends_with(&[0xFF, 0xD9])
}
