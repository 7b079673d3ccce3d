//! A running word count kept in the key-value store, written in Rust against sdk/rust/psl.rs.
//! Requests:
//!   TEXT             count the words of TEXT (lower-cased runs of letters and digits); prints
//!                    "WORD TOTAL" for each distinct word of TEXT, in alphabetical order, then
//!                    "words N" (all words counted so far)
//!   "? WORD..."      prints "WORD TOTAL" for each WORD without counting anything
//!   "forget WORD"    deletes WORD's count; prints "forgot WORD"
//! Counts live under "wc/WORD" as decimal strings, the grand total under "wc/#"; updates hold the
//! lock "wc" so concurrent invocations on any worker never lose an increment.
use std::collections::BTreeMap;
use std::io::Write;
use std::process::exit;

fn count_of(word: &str) -> Result<u64, psl::Error> {
    let v = psl::get_string(&format!("wc/{}", word))?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn words(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

fn run(req: &str) -> Result<String, psl::Error> {
    let mut out = String::new();
    if let Some(rest) = req.strip_prefix("? ") {
        for w in rest.split_whitespace() {
            out += &format!("{} {}\n", w, count_of(w)?);
        }
        return Ok(out);
    }
    if let Some(w) = req.strip_prefix("forget ") {
        let w = w.trim();
        let _g = psl::lock("wc")?;
        let total = count_of("#")?.saturating_sub(count_of(w)?);
        psl::delete(format!("wc/{}", w).as_bytes())?;
        psl::put(b"wc/#", total.to_string().as_bytes())?;
        return Ok(format!("forgot {}\n", w));
    }
    let counts = words(req);
    let guard = psl::lock("wc")?;
    let mut total = count_of("#")?;
    for (w, n) in &counts {
        let t = count_of(w)? + n;
        psl::put(format!("wc/{}", w).as_bytes(), t.to_string().as_bytes())?;
        out += &format!("{} {}\n", w, t);
        total += n;
    }
    psl::put(b"wc/#", total.to_string().as_bytes())?;
    guard.unlock()?;
    out += &format!("words {}\n", total);
    Ok(out)
}

fn main() {
    let req = String::from_utf8_lossy(&psl::request()).into_owned();
    match run(req.trim_end()) {
        Ok(out) => {
            if std::io::stdout().write_all(out.as_bytes()).is_err() {
                exit(3);
            }
        }
        Err(e) => {
            eprintln!("wordcount: {}", e);
            psl::log(&format!("wordcount failed: {}", e));
            exit(2);
        }
    }
}
