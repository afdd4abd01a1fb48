//! The media core stays sans-I/O, checked on its source text (in the manner of rust-analyzer's
//! tidy tests): nothing under `src/media/` opens a socket, reads the clock or spawns a thread or
//! task outside `#[cfg(test)]` code. Time comes in as `now`, datagrams come in and go out as
//! values; `worker.rs` and `signalling.rs` are the I/O edges.

use std::path::{Path, PathBuf};

/// What the media core must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("UdpSocket", "a socket"),
    ("tokio::net", "a socket"),
    ("socket2", "a socket"),
    ("quinn_udp", "a socket"),
    ("Instant::now", "the clock"),
    ("SystemTime::now", "the clock"),
    ("tokio::time", "the clock"),
    ("thread::spawn", "a spawn"),
    ("tokio::spawn", "a spawn"),
    ("tokio::task", "a spawn"),
];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `code` with `//` comments blanked (a `//` inside a string or char literal is kept).
fn without_comments(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 1;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\''): copied whole; otherwise a lifetime.
            let end = if chars.get(i + 1) == Some(&'\\') {
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            let end = end.unwrap_or(i);
            out.extend(&chars[i..=end]);
            i = end;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// `code` (comments already blanked) with every item under `#[cfg(test)]` blanked (lines
/// kept, so line numbers still match): a `mod tests { … }`, a function, an `impl` block or a
/// `use …;`.
fn without_test_code(code: &str) -> String {
    let bytes = code.as_bytes();
    let mut keep = vec![true; bytes.len()];
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let start = from + found;
        let mut i = start + "#[cfg(test)]".len();
        // The item ends at its first `;` or at the `}` closing its first `{`.
        let mut depth = 0usize;
        let mut in_string = false;
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                match b {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    // A char literal such as '{' or '"'.
                    b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
                    b'\'' if bytes.get(i + 1) == Some(&b'\\') => {
                        i += 3;
                        while i < bytes.len() && bytes[i] != b'\'' {
                            i += 1;
                        }
                    }
                    b'{' => depth += 1,
                    b'}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break;
                        }
                    }
                    b';' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let end = (i + 1).min(bytes.len());
        for k in keep.iter_mut().take(end).skip(start) {
            *k = false;
        }
        from = end;
    }
    bytes
        .iter()
        .zip(keep)
        .map(|(&b, kept)| if kept || b == b'\n' { b as char } else { ' ' })
        .collect()
}

/// Where `dir`'s non-test code names something forbidden.
fn offences_in(dir: &Path) -> Vec<String> {
    let mut offences = Vec::new();
    for file in rust_files(dir) {
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        let code = without_test_code(&without_comments(&text));
        for (number, line) in code.lines().enumerate() {
            for (pattern, what) in FORBIDDEN {
                if line.contains(pattern) {
                    offences.push(format!(
                        "{}:{}: {what} ({pattern}): {}",
                        file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                            .unwrap_or(&file)
                            .display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    offences
}

#[test]
fn the_media_core_has_no_socket_clock_or_spawn() {
    let media = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join("media");
    let offences = offences_in(&media);
    assert!(
        offences.is_empty(),
        "src/media/ is sans-I/O: no socket, no clock, no spawn outside #[cfg(test)] \
         (take `now` and datagrams as input; I/O belongs in worker.rs):\n{}",
        offences.join("\n")
    );
}

#[test]
fn test_code_and_comments_are_not_offences_but_code_is() {
    let code = "use std::time::Duration; // Instant::now in a comment\n\
                fn live() { let s = \"// not a comment\"; let t = Instant::now(); }\n\
                #[cfg(test)]\n\
                mod tests { fn t() { let _ = std::time::Instant::now(); { tokio::spawn(x); } } }\n\
                #[cfg(test)]\n\
                use std::net::UdpSocket;\n\
                fn chars() { let _ = ('{', '\"', '\\'', b'}'); }\n\
                fn after() { std::thread::spawn(|| {}); }\n";
    let cleaned = without_test_code(&without_comments(code));
    assert_eq!(cleaned.lines().count(), code.lines().count());
    assert!(cleaned.contains("Instant::now()"), "{cleaned}");
    assert_eq!(cleaned.matches("Instant::now").count(), 1, "{cleaned}");
    assert!(!cleaned.contains("tokio::spawn"), "{cleaned}");
    assert!(!cleaned.contains("UdpSocket"), "{cleaned}");
    assert!(cleaned.contains("std::thread::spawn"), "{cleaned}");
    assert!(cleaned.contains("\"// not a comment\""), "{cleaned}");
}
