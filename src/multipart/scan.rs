// SPDX-License-Identifier: MPL-2.0

//! Finding the delimiter: what it is as far as known ([`Delimiter`]), a
//! search over data arriving in pieces ([`Scanner`]), and the last bytes of
//! a part ([`Tail`]).

use std::ops::Range;

use memchr::memmem::Finder;

/// How many of the last body bytes of a part the parser remembers.
pub(super) const TAIL_LEN: usize = 64;

/// The delimiter line, as far as it is known.
pub(super) struct Delimiter {
    /// The delimiter line (`--B`) once seen in the body.
    pub(super) learnt: Option<Vec<u8>>,
    /// Possible delimiter lines from the Content-Type boundary parameter,
    /// longest first.
    pub(super) hints: Vec<Vec<u8>>,
    /// Finds `\n` + the best-known delimiter line (or just `\n--`).
    pub(super) finder: Finder<'static>,
}

impl Delimiter {
    pub(super) fn new(boundary: Option<&str>) -> Self {
        let mut hints = Vec::new();
        if let Some(b) = boundary.filter(|b| !b.is_empty()) {
            hints.push([b"--", b.as_bytes()].concat());
            if b.starts_with("--") {
                hints.push(b.as_bytes().to_vec());
            }
        }
        // Scanning before anything is learnt: `boundary=--B` is taken to
        // mean lines `--B`, as the servers that send it do.
        let line = hints.last().map_or(&b"--"[..], Vec::as_slice);
        let finder = Self::finder_for(line);
        Self {
            learnt: None,
            hints,
            finder,
        }
    }

    pub(super) fn finder_for(line: &[u8]) -> Finder<'static> {
        Finder::new(&[b"\n", line].concat()).into_owned()
    }

    /// What a delimiter line starts with.
    pub(super) fn prefix(&self) -> &[u8] {
        self.learnt.as_deref().unwrap_or(b"--")
    }

    /// `\n` + what a delimiter line starts with, as the finder looks for it.
    pub(super) fn needle(&self) -> &[u8] {
        self.finder.needle()
    }

    /// Learns the delimiter from the first delimiter line (trimmed, starting
    /// with `--`) and returns its length. A hint that prefixes the line wins;
    /// else a header glued to the delimiter is cut off; else it is the whole
    /// line.
    pub(super) fn learn(&mut self, line: &[u8]) -> usize {
        let len = self
            .hints
            .iter()
            .find(|hint| line.starts_with(hint))
            .map(Vec::len)
            .or_else(|| {
                Finder::new(b"content-")
                    .find(&line.to_ascii_lowercase())
                    .filter(|&at| at > 2)
            })
            .unwrap_or(line.len());
        let learnt = line[..len].to_vec();
        self.finder = Self::finder_for(&learnt);
        self.learnt = Some(learnt);
        len
    }

    /// Whether `rest`, what follows the delimiter on its line, closes the
    /// stream. Not for a delimiter that itself ends in `--` (`data-boundary--`).
    pub(super) fn is_close(&self, rest: &[u8]) -> bool {
        rest == b"--" && !self.prefix().ends_with(b"--")
    }
}

/// Searches `\n` + delimiter in data arriving in pieces, holding back only
/// the bytes that could begin a match.
#[derive(Default)]
pub(super) struct Scanner {
    /// Unreleased bytes from earlier pieces, at most a needle's length.
    pub(super) hold: Vec<u8>,
    /// Leading bytes of `hold` that are not data: a virtual `\n` so that a
    /// delimiter at the very start of a line matches.
    pub(super) skip: usize,
}

/// The outcome of [`Scanner::step`]; positions index `hold` + `input`.
pub(super) struct ScanStep {
    /// Data before the delimiter (or that cannot be part of one).
    pub(super) data: Range<usize>,
    /// Bytes of `input` consumed.
    pub(super) used: usize,
    pub(super) found: bool,
    /// Without a match: where the bytes to hold back start.
    pub(super) keep_from: usize,
}

impl Scanner {
    pub(super) fn reset(&mut self, at_line_start: bool) {
        self.hold.clear();
        self.skip = usize::from(at_line_start);
        if at_line_start {
            self.hold.push(b'\n');
        }
    }

    pub(super) fn step(&mut self, finder: &Finder, input: &[u8]) -> ScanStep {
        let needle = finder.needle().len();
        let held = self.hold.len();
        // Matches straddling `hold` and `input`.
        self.hold
            .extend_from_slice(&input[..needle.min(input.len())]);
        let found = finder
            .find(&self.hold)
            .or_else(|| finder.find(input).map(|at| at + held));
        self.hold.truncate(held);
        let byte = |at: usize| match at.checked_sub(held) {
            None => self.hold.get(at).copied(),
            Some(at) => input.get(at).copied(),
        };
        match found {
            Some(at) => {
                let end = if at > self.skip && byte(at - 1) == Some(b'\r') {
                    at - 1
                } else {
                    at
                };
                ScanStep {
                    data: self.skip..end.max(self.skip),
                    used: (at + needle).saturating_sub(held),
                    found: true,
                    keep_from: at + needle,
                }
            }
            None => {
                let keep_from = (held + input.len()).saturating_sub(needle);
                ScanStep {
                    data: self.skip..keep_from.max(self.skip),
                    used: input.len(),
                    found: false,
                    keep_from,
                }
            }
        }
    }

    /// Drops what `step` released or matched, keeps what may begin a match.
    pub(super) fn commit(&mut self, input: &[u8], step: &ScanStep) {
        if step.found {
            self.reset(false);
            return;
        }
        let held = self.hold.len();
        if step.keep_from >= held {
            self.hold.clear();
            self.hold
                .extend_from_slice(input.get(step.keep_from - held..).unwrap_or_default());
        } else {
            self.hold.drain(..step.keep_from);
            self.hold.extend_from_slice(input);
        }
        self.skip = self.skip.saturating_sub(step.keep_from);
    }
}

/// The last bytes of a part body, to see how it ends.
pub(super) struct Tail {
    pub(super) bytes: [u8; TAIL_LEN],
    pub(super) len: usize,
}

impl Tail {
    pub(super) const EMPTY: Self = Self {
        bytes: [0; TAIL_LEN],
        len: 0,
    };

    pub(super) fn push(&mut self, data: &[u8]) {
        if data.len() >= TAIL_LEN {
            self.bytes.copy_from_slice(&data[data.len() - TAIL_LEN..]);
            self.len = TAIL_LEN;
        } else {
            let keep = self.len.min(TAIL_LEN - data.len());
            self.bytes.copy_within(self.len - keep..self.len, 0);
            self.bytes[keep..keep + data.len()].copy_from_slice(data);
            self.len = keep + data.len();
        }
    }

    /// Replace the window with the last bytes of the body.
    pub(super) fn set(&mut self, last: &[u8]) {
        let last = &last[last.len().saturating_sub(TAIL_LEN)..];
        self.bytes[..last.len()].copy_from_slice(last);
        self.len = last.len();
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(super) fn ends_with_eoi(&self) -> bool {
        self.bytes().ends_with(&[0xFF, 0xD9])
    }
}
