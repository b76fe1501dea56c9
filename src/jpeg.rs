// SPDX-License-Identifier: MPL-2.0
//! JPEG header inspection without decoding.
//!
//! * [`dimensions`] walks the marker segments of a complete JPEG to its first
//!   SOFn header and reads width and height from it.
//! * [`starts_with_soi`] checks for the start-of-image marker.
//! * [`FrameSplitter`] finds frame boundaries in a stream of concatenated
//!   JPEGs (servers that send no multipart framing at all). It follows the
//!   segment structure: marker segments are skipped by their length field, so
//!   an EXIF thumbnail inside APP1, with its own SOI and EOI, is never taken
//!   for a frame boundary; only the entropy-coded data after SOS is scanned
//!   for markers.

/// The largest width or height [`dimensions`] accepts.
///
/// JPEG allows up to 65535 per side, but no camera sends more than 16384:
/// the largest sensors in IP cameras are 8K (7680x4320), 16384 is twice
/// that and also the usual limit of GPU textures and hardware decoders. The
/// size read here goes into caps, so a header from a hostile or broken peer
/// claiming 65535x65535 (4 gigapixels, 16 GiB as RGBA) must not reach a
/// downstream element that allocates by it: such a frame is treated as one
/// without a readable size.
pub const MAX_DIMENSION: u32 = 16384;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;

/// Markers that stand alone, without a length field: TEM, RST0-7, SOI, EOI.
fn is_standalone(marker: u8) -> bool {
    matches!(marker, TEM | 0xD0..=0xD9)
}

/// Start-of-frame markers: SOF0-3, SOF5-7, SOF9-11, SOF13-15 (C4 DHT, C8 JPG
/// and CC DAC are not frame headers).
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF)
}

/// Whether `data` begins with the SOI marker `FF D8`.
pub fn starts_with_soi(data: &[u8]) -> bool {
    data.starts_with(&[0xFF, SOI])
}

/// Width and height from the first SOFn header of a JPEG, found by walking the
/// marker segments from SOI. `None` if `data` is not a JPEG, is truncated
/// before the SOF header, or declares a size outside 1..=[`MAX_DIMENSION`]
/// per side (0 is a height set later by DNL).
pub fn dimensions(data: &[u8]) -> Option<(u32, u32)> {
    if !starts_with_soi(data) {
        return None;
    }
    let mut pos = 2;
    loop {
        if *data.get(pos)? != 0xFF {
            return None;
        }
        // Any number of 0xFF fill bytes may precede the marker code.
        while *data.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = *data.get(pos)?;
        pos += 1;
        if is_standalone(marker) {
            if marker == EOI {
                return None;
            }
            continue;
        }
        // Segment: 2-byte big-endian length including itself, then payload.
        let length = usize::from(u16::from_be_bytes([*data.get(pos)?, *data.get(pos + 1)?]));
        if is_sof(marker) {
            // Payload: precision (1), height (2), width (2), ...
            let sof = data.get(pos + 2..pos + 7)?;
            let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
            let readable = |side: u32| (1..=MAX_DIMENSION).contains(&side);
            return (readable(width) && readable(height)).then_some((width, height));
        }
        if marker == SOS || length < 2 {
            return None;
        }
        pos += length;
    }
}

/// A frame boundary reported by [`FrameSplitter::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A frame starts with the SOI that ends the scanned bytes. If `carried`,
    /// only its `D8` was in this slice: the `FF` was the last byte of the
    /// previous one (and was reported there as garbage).
    Soi { carried: bool },
    /// The current frame ends with the EOI that ends the scanned bytes.
    Eoi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitState {
    /// Between frames, looking for SOI; `ff`: the last byte was 0xFF.
    Seek { ff: bool },
    /// Inside a frame where a marker must follow; `ff`: its 0xFF was seen.
    Marker { ff: bool },
    /// Reading a segment's length field; `high` is its first byte once read.
    Length { high: Option<u8>, sos: bool },
    /// Skipping `remaining` payload bytes of a segment.
    Segment { remaining: usize, sos: bool },
    /// Entropy-coded data after SOS; `ff`: the last byte was 0xFF.
    Entropy { ff: bool },
}

/// Incremental SOI/EOI splitter for a stream of concatenated JPEGs.
///
/// Feed it consecutive slices of the stream; memory use is constant.
#[derive(Debug, Clone)]
pub struct FrameSplitter {
    state: SplitState,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameSplitter {
    pub fn new() -> Self {
        Self {
            state: SplitState::Seek { ff: false },
        }
    }

    /// Whether the bytes scanned last belong to a frame (SOI seen, EOI not yet).
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, SplitState::Seek { .. })
    }

    /// Scans `data`, which continues the stream, up to the next frame
    /// boundary. Returns how many bytes were consumed and the boundary that
    /// stopped the scan, if any. Without a boundary all of `data` is consumed
    /// and belongs to the current frame if [`in_frame`](Self::in_frame), else
    /// is garbage between frames. With [`Mark::Soi`] the consumed bytes end
    /// with the SOI (everything before it is garbage); with [`Mark::Eoi`] they
    /// end with the EOI and all belong to the frame.
    pub fn scan(&mut self, data: &[u8]) -> (usize, Option<Mark>) {
        let mut pos = 0;
        while let Some(&byte) = data.get(pos) {
            match self.state {
                SplitState::Seek { ff: true } if byte == SOI => {
                    let carried = pos == 0;
                    self.state = SplitState::Marker { ff: false };
                    return (pos + 1, Some(Mark::Soi { carried }));
                }
                SplitState::Seek { ff } => {
                    if ff && byte == 0xFF {
                        pos += 1;
                    } else {
                        match memchr::memchr(0xFF, &data[pos..]) {
                            Some(offset) => {
                                pos += offset + 1;
                                self.state = SplitState::Seek { ff: true };
                            }
                            None => {
                                self.state = SplitState::Seek { ff: false };
                                return (data.len(), None);
                            }
                        }
                    }
                }
                SplitState::Marker { ff: false } => {
                    pos += 1;
                    // Anything but a marker here means a corrupt segment
                    // structure: fall back to scanning for the next marker.
                    self.state = if byte == 0xFF {
                        SplitState::Marker { ff: true }
                    } else {
                        SplitState::Entropy { ff: false }
                    };
                }
                SplitState::Marker { ff: true } | SplitState::Entropy { ff: true } => {
                    pos += 1;
                    let in_entropy = matches!(self.state, SplitState::Entropy { .. });
                    match byte {
                        EOI => {
                            self.state = SplitState::Seek { ff: false };
                            return (pos, Some(Mark::Eoi));
                        }
                        // Fill byte: the marker code is still to come.
                        0xFF => {}
                        // Byte stuffing in entropy-coded data; anywhere else a
                        // corrupt structure: either way, scan for the next marker.
                        0x00 => self.state = SplitState::Entropy { ff: false },
                        // RSTn in entropy-coded data, or a marker without a
                        // length between segments.
                        marker if is_standalone(marker) => {
                            self.state = if in_entropy {
                                SplitState::Entropy { ff: false }
                            } else {
                                SplitState::Marker { ff: false }
                            };
                        }
                        marker => {
                            self.state = SplitState::Length {
                                high: None,
                                sos: marker == SOS,
                            }
                        }
                    }
                }
                SplitState::Length { high: None, sos } => {
                    pos += 1;
                    self.state = SplitState::Length {
                        high: Some(byte),
                        sos,
                    };
                }
                SplitState::Length {
                    high: Some(high),
                    sos,
                } => {
                    pos += 1;
                    let length = usize::from(u16::from_be_bytes([high, byte]));
                    self.state = match length.checked_sub(2) {
                        Some(remaining) => SplitState::Segment { remaining, sos },
                        None => SplitState::Entropy { ff: false },
                    };
                    self.finish_segment();
                }
                SplitState::Segment { remaining, sos } => {
                    let skipped = remaining.min(data.len() - pos);
                    pos += skipped;
                    self.state = SplitState::Segment {
                        remaining: remaining - skipped,
                        sos,
                    };
                    self.finish_segment();
                }
                SplitState::Entropy { ff: false } => match memchr::memchr(0xFF, &data[pos..]) {
                    Some(offset) => {
                        pos += offset + 1;
                        self.state = SplitState::Entropy { ff: true };
                    }
                    None => return (data.len(), None),
                },
            }
        }
        (pos, None)
    }

    /// After a segment's payload: entropy-coded data follows SOS, a marker
    /// follows anything else.
    fn finish_segment(&mut self) {
        if let SplitState::Segment { remaining: 0, sos } = self.state {
            self.state = if sos {
                SplitState::Entropy { ff: false }
            } else {
                SplitState::Marker { ff: false }
            };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small structurally valid JPEG: SOI, APP0, SOF0 (`width` x `height`),
    /// SOS, entropy-coded bytes with stuffing and a restart marker, EOI.
    /// `fill` varies the entropy bytes so frames differ.
    pub(crate) fn synthetic_jpeg(width: u16, height: u16, fill: u8) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0x00]);
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        j.extend_from_slice(&height.to_be_bytes());
        j.extend_from_slice(&width.to_be_bytes());
        j.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        for i in 0..40u8 {
            j.push(fill.wrapping_add(i.wrapping_mul(7)) & 0x7F);
        }
        j.extend_from_slice(&[0xFF, 0x00, 0x12, 0xFF, 0xD3, 0x34, 0x56]);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    /// A JPEG whose APP1 (EXIF) segment embeds a complete thumbnail JPEG,
    /// with its own SOI and EOI, before the main image's SOF.
    pub(crate) fn jpeg_with_thumbnail() -> Vec<u8> {
        let thumb = synthetic_jpeg(4, 3, 9);
        let main = synthetic_jpeg(64, 48, 1);
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let length = u16::try_from(2 + 6 + thumb.len()).unwrap();
        j.extend_from_slice(&length.to_be_bytes());
        j.extend_from_slice(b"Exif\0\0");
        j.extend_from_slice(&thumb);
        j.extend_from_slice(&main[2..]);
        j
    }

    #[test]
    fn dimensions_from_sof0() {
        assert_eq!(dimensions(&synthetic_jpeg(640, 480, 0)), Some((640, 480)));
    }

    #[test]
    fn dimensions_skip_exif_thumbnail() {
        assert_eq!(dimensions(&jpeg_with_thumbnail()), Some((64, 48)));
    }

    #[test]
    fn dimensions_other_sof_markers_and_fill_bytes() {
        for marker in [0xC1, 0xC2, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF] {
            let mut j = synthetic_jpeg(320, 240, 0);
            j[12] = marker;
            assert_eq!(dimensions(&j), Some((320, 240)), "SOF {marker:#x}");
        }
        // DHT (C4) is not a frame header: skipped by length.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xFF, 0xC4, 0x00, 0x03, 0x00];
        j.extend_from_slice(&synthetic_jpeg(8, 6, 0)[2..]);
        assert_eq!(dimensions(&j), Some((8, 6)));
    }

    #[test]
    fn dimensions_outside_the_bound_are_unreadable() {
        assert_eq!(dimensions(&synthetic_jpeg(16384, 1, 0)), Some((16384, 1)));
        assert_eq!(dimensions(&synthetic_jpeg(1, 16384, 0)), Some((1, 16384)));
        assert_eq!(
            dimensions(&synthetic_jpeg(16384, 16384, 0)),
            Some((16384, 16384))
        );
        for (width, height) in [(16385, 480), (640, 16385), (65535, 65535), (0, 0)] {
            assert_eq!(
                dimensions(&synthetic_jpeg(width, height, 0)),
                None,
                "{width}x{height}"
            );
        }
    }

    #[test]
    fn dimensions_reject_bad_input() {
        let j = synthetic_jpeg(640, 480, 0);
        assert_eq!(dimensions(&[]), None);
        assert_eq!(dimensions(b"--frame"), None);
        for end in 0..20 {
            assert_eq!(dimensions(&j[..end]), None, "truncated at {end}");
        }
        assert_eq!(dimensions(&synthetic_jpeg(0, 480, 0)), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00]), None);
    }

    #[test]
    fn soi() {
        assert!(starts_with_soi(&[0xFF, 0xD8, 0xFF]));
        assert!(!starts_with_soi(&[0xFF]));
        assert!(!starts_with_soi(b"\r\n--b"));
    }

    /// Runs the splitter over `chunks`, returning (garbage bytes, frames).
    fn split(chunks: &[&[u8]]) -> (usize, Vec<Vec<u8>>) {
        let mut splitter = FrameSplitter::new();
        let mut garbage = 0;
        let mut frames = Vec::new();
        let mut current = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let in_frame = splitter.in_frame();
                let (used, mark) = splitter.scan(rest);
                let (seen, next) = rest.split_at(used);
                rest = next;
                match mark {
                    None if in_frame => current.extend_from_slice(seen),
                    None => garbage += seen.len(),
                    Some(Mark::Soi { carried }) => {
                        let soi = if carried { 1 } else { 2 };
                        // A carried FF was counted as garbage by the previous scan.
                        garbage = garbage + used - soi - usize::from(carried);
                        current = if carried { vec![0xFF] } else { Vec::new() };
                        current.extend_from_slice(&seen[used - soi..]);
                    }
                    Some(Mark::Eoi) => {
                        current.extend_from_slice(seen);
                        frames.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        (garbage, frames)
    }

    #[test]
    fn splitter_survives_thumbnails_at_every_split() {
        let a = jpeg_with_thumbnail();
        let b = synthetic_jpeg(16, 16, 3);
        let mut stream = b"junk\xFF".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(&b);
        let expected = (7, vec![a, b]);
        assert_eq!(split(&[&stream]), expected);
        for at in 0..=stream.len() {
            let (x, y) = stream.split_at(at);
            assert_eq!(split(&[x, y]), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split(&bytes), expected);
    }
}
