// SPDX-License-Identifier: MPL-2.0

//! The source's answer to `WWW-Authenticate` challenges on arbitrary text:
//! parsing any challenge list (one header value per line), answering it,
//! and learning from a second 401 never panics, and never answers in Basic
//! once Digest was offered.
#![no_main]

use gstmjpeg::internals::auth::{Auth, Credentials, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Two rounds of challenges, split at the first blank line; one header
    // value per line.
    let (first, second) = match text.split_once("\n\n") {
        Some((a, b)) => (a, b),
        None => (text.as_ref(), ""),
    };
    let mut auth = Auth::new(Some(Credentials::new("admin", "sécret")));
    let mut digest_seen = false;
    for round in [first, second] {
        // A challenge item (after a comma) whose scheme token is Digest.
        if round.lines().any(|l| {
            l.split(',').any(|item| {
                item.split_ascii_whitespace()
                    .next()
                    .is_some_and(|t| t.eq_ignore_ascii_case("digest"))
            })
        }) {
            digest_seen = true;
        }
        let verdict = auth.challenge(round.lines());
        for uri in ["/video.mjpg", "/a?b=c&d", "*"] {
            let answer = auth.authorization(uri);
            if let (Verdict::Retry, Some(a)) = (&verdict, &answer) {
                assert!(
                    !(digest_seen && a.starts_with("Basic ")),
                    "Basic after a Digest offer: {round:?}"
                );
            }
        }
    }
});
