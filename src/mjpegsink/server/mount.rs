// SPDX-License-Identifier: MPL-2.0

//! Mount paths: what a `mount` may be, and which mount a request path
//! belongs to (the longest mount that is a prefix of the path on a segment
//! boundary: `/cam1` owns `/cam1`, `/cam1/` and `/cam1/stream`, not
//! `/cam10`).

/// `mount` normalized: `/`, or `/seg/seg` without a trailing slash, each
/// segment of `A-Z a-z 0-9 - . _ ~` and neither `.` nor `..`. `None` for
/// anything else (the mount is written into the index page and URLs
/// unescaped, so it is kept to characters that need no escaping).
pub fn normalize(mount: &str) -> Option<String> {
    let rest = mount.strip_prefix('/')?;
    if rest.starts_with('/') {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some("/".to_string());
    }
    let ok = rest.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    });
    ok.then(|| format!("/{rest}"))
}

/// The rest of `path` below `mount` (normalized) as the endpoint path the
/// mount routes (`/`, `/stream` ...), or `None` when `path` is not under
/// `mount`.
pub(crate) fn strip<'p>(mount: &str, path: &'p str) -> Option<&'p str> {
    if mount == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(mount)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(normalize("/cam1").as_deref(), Some("/cam1"));
        assert_eq!(normalize("/cam1/").as_deref(), Some("/cam1"));
        assert_eq!(normalize("/a/b.c_d-e~f").as_deref(), Some("/a/b.c_d-e~f"));
        for bad in [
            "", "cam1", "//", "/a//b", "/a/../b", "/.", "/a b", "/a?b", "/a\"b", "/ä",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strips_on_segment_boundaries() {
        assert_eq!(strip("/", "/stream"), Some("/stream"));
        assert_eq!(strip("/cam1", "/cam1"), Some("/"));
        assert_eq!(strip("/cam1", "/cam1/"), Some("/"));
        assert_eq!(strip("/cam1", "/cam1/snapshot"), Some("/snapshot"));
        assert_eq!(strip("/cam1", "/cam10"), None);
        assert_eq!(strip("/cam1", "/cam10/stream"), None);
        assert_eq!(strip("/cam1", "/"), None);
        assert_eq!(strip("/a/b", "/a/b/state"), Some("/state"));
        assert_eq!(strip("/a/b", "/a/state"), None);
    }
}
