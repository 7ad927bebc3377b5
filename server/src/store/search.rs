//! The text analysis behind message search (protocol 1.6), the same for both stores: what a
//! message is indexed as, what a query asks for, and where a hit's terms are in its text.
//!
//! Chinese and Japanese have no spaces, and the engines' own tokenizers (SQLite's unicode61,
//! InnoDB's full-text parser) take a run of ideographs for one word. So the index does not
//! hold the text but *terms* made here: words of other scripts lowercased (after NFC), and for
//! each run of CJK characters its overlapping bigrams plus its last character (`会议室` ->
//! `会议 议室 室`), the usual analysis for CJK without a dictionary. A 2-character query word
//! is then one term; a longer one a phrase of bigrams; a single character a prefix. InnoDB
//! only indexes terms of 3 characters or more (innodb_ft_min_token_size): its terms carry a
//! 2-letter prefix ([`MYSQL_PREFIX`]).

use std::sync::atomic::{AtomicBool, Ordering};

use unicode_normalization::UnicodeNormalization;

/// Whether new messages are indexed (`--search-index`, on by default). One switch for the
/// process: the store's operations do not carry the configuration.
static INDEXING: AtomicBool = AtomicBool::new(true);

/// Turns indexing (and so search) on or off for this process, at start.
pub fn set_indexing(on: bool) {
    INDEXING.store(on, Ordering::Relaxed);
}

pub fn indexing() -> bool {
    INDEXING.load(Ordering::Relaxed)
}

/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most terms (words, prefixes, phrases) in a query.
pub const MAX_TERMS: usize = 20;
/// Longer words are cut to this many characters (in the index and in queries alike).
const MAX_WORD_CHARS: usize = 40;
/// Put before every InnoDB term, so that none is shorter than its 3-character minimum.
pub const MYSQL_PREFIX: &str = "zq";

/// English words a query ignores when they stand alone (a phrase keeps them).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Han, kana, Hangul and their punctuation-free neighbours: scripts written without spaces.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana and its sound marks
        | 0x20000..=0x3134F  // CJK Extensions B-G
    )
}

fn is_word_char(c: char) -> bool {
    !is_cjk(c) && (c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c))
}

/// One unit of text: a word (lowercased) or a single CJK character, with its byte range in the
/// text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    text: String,
    cjk: bool,
    start: usize,
    end: usize,
}

/// Splits `text` (already NFC) into units; everything else (spaces, punctuation, emoji) only
/// separates them.
fn units(text: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut word: Option<(usize, String)> = None;
    let flush = |word: &mut Option<(usize, String)>, end: usize, out: &mut Vec<Unit>| {
        if let Some((start, w)) = word.take() {
            // Without the accents of Latin, Greek and Cyrillic (U+0300-U+036F): `école` is
            // `ecole`, on both stores. Other marks (Indic vowel signs) are part of the word.
            let text: String = w
                .nfd()
                .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
                .take(MAX_WORD_CHARS)
                .collect();
            out.push(Unit {
                text,
                cjk: false,
                start,
                end,
            });
        }
    };
    for (i, c) in text.char_indices() {
        if is_word_char(c) {
            let (_, w) = word.get_or_insert_with(|| (i, String::new()));
            w.extend(c.to_lowercase());
            continue;
        }
        flush(&mut word, i, &mut out);
        if is_cjk(c) {
            out.push(Unit {
                text: c.to_string(),
                cjk: true,
                start: i,
                end: i + c.len_utf8(),
            });
        }
    }
    flush(&mut word, text.len(), &mut out);
    out
}

/// The index terms of a run of units: words as they are; each run of adjacent CJK characters
/// as its bigrams and its last character.
fn terms_of(units: &[Unit], with_last: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < units.len() {
        if !units[i].cjk {
            out.push(units[i].text.clone());
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < units.len() && units[j + 1].cjk && units[j + 1].start == units[j].end {
            j += 1;
        }
        for k in i..j {
            out.push(format!("{}{}", units[k].text, units[k + 1].text));
        }
        if with_last || i == j {
            out.push(units[j].text.clone());
        }
        i = j + 1;
    }
    out
}

/// What a message's text is indexed as: its terms, separated by spaces.
pub fn index_terms(body: &str) -> String {
    let text: String = body.nfc().collect();
    terms_of(&units(&text), true).join(" ")
}

/// One part of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// One index term.
    Word(String),
    /// Index terms that start with this.
    Prefix(String),
    /// Index terms one after another.
    Phrase(Vec<String>),
}

/// Why a query is refused (an empty one is not refused: it finds nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is longer than 256 bytes")]
    TooLong,
    #[error("the query has more than 20 terms")]
    TooManyTerms,
}

/// A query: words (`deploy`), prefixes (`deploy*`) and quoted phrases (`"deploy now"`), all of
/// which a message must hold. Only punctuation or stop words: no terms, no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
    /// The units the terms stand for, for highlighting (a phrase's, a word's).
    highlight: Vec<(Vec<String>, bool)>,
}

/// A piece of the query text with whether it was quoted.
fn pieces(q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (n, part) in q.split('"').enumerate() {
        if n % 2 == 1 {
            out.push((part.to_owned(), true));
        } else {
            out.extend(part.split_whitespace().map(|w| (w.to_owned(), false)));
        }
    }
    out
}

impl Query {
    pub fn parse(q: &str) -> Result<Query, QueryError> {
        if q.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let q: String = q.nfc().collect();
        let mut terms = Vec::new();
        let mut highlight = Vec::new();
        for (piece, quoted) in pieces(&q) {
            let prefix = !quoted && piece.ends_with('*');
            let us = units(piece.trim_end_matches('*'));
            if us.is_empty() {
                continue;
            }
            let unit_texts: Vec<String> = us.iter().map(|u| u.text.clone()).collect();
            let t = terms_of(&us, false);
            let term = match (quoted, prefix, t.as_slice()) {
                (false, _, [w]) if !us[0].cjk && STOP_WORDS.contains(&w.as_str()) && !prefix => {
                    continue;
                }
                // A lone CJK character: any term that starts with it.
                (false, _, [w]) if us.len() == 1 && us[0].cjk => Term::Prefix(w.clone()),
                (false, true, [w]) => Term::Prefix(w.clone()),
                (_, _, [w]) => Term::Word(w.clone()),
                _ => Term::Phrase(t),
            };
            terms.push(term);
            highlight.push((unit_texts, prefix || (us.len() == 1 && us[0].cjk)));
        }
        if terms.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms);
        }
        Ok(Query { terms, highlight })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The query in SQLite FTS5 syntax: every term required, each one quoted (terms hold only
    /// letters, digits and CJK, never a quote).
    pub fn fts5(&self) -> String {
        let term = |t: &Term| match t {
            Term::Word(w) => format!("\"{w}\""),
            Term::Prefix(w) => format!("\"{w}\"*"),
            Term::Phrase(ws) => format!("\"{}\"", ws.join(" ")),
        };
        self.terms
            .iter()
            .map(term)
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The query in InnoDB's boolean full-text syntax, on prefixed terms.
    pub fn mysql(&self) -> String {
        let p = MYSQL_PREFIX;
        let term = |t: &Term| match t {
            Term::Word(w) => format!("+{p}{w}"),
            Term::Prefix(w) => format!("+{p}{w}*"),
            Term::Phrase(ws) => format!(
                "+\"{}\"",
                ws.iter()
                    .map(|w| format!("{p}{w}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        self.terms.iter().map(term).collect::<Vec<_>>().join(" ")
    }

    /// Where the query's terms are in `body`: byte ranges, sorted and merged.
    pub fn spans(&self, body: &str) -> Vec<(usize, usize)> {
        let us = units(body);
        let mut spans = Vec::new();
        for (want, prefix) in &self.highlight {
            let n = want.len();
            for i in 0..us.len() {
                if i + n > us.len() {
                    break;
                }
                let hit = want.iter().enumerate().all(|(k, w)| {
                    let u = &us[i + k].text;
                    if *prefix && k + 1 == n {
                        u.starts_with(w.as_str())
                    } else {
                        u == w
                    }
                });
                if hit {
                    spans.push((us[i].start, us[i + n - 1].end));
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }
}

/// A MySQL index row's text: the terms, each with the prefix InnoDB needs.
pub fn mysql_terms(terms: &str) -> String {
    terms
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| format!("{MYSQL_PREFIX}{t}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_indexed_as_bigrams_and_english_as_lowercase_words() {
        assert_eq!(index_terms("明天开会议"), "明天 天开 开会 会议 议");
        assert_eq!(index_terms("Deploy 到 prod!"), "deploy 到 prod");
        assert_eq!(index_terms("会议室ready吗"), "会议 议室 室 ready 吗");
        assert_eq!(index_terms("ｶﾞ"), "ｶﾞ ﾞ");
        assert_eq!(index_terms("😀 …"), "");
        // NFC first: a decomposed é is the same word as a composed one; and both are `ecole`.
        assert_eq!(index_terms("e\u{301}cole"), index_terms("école"));
        assert_eq!(index_terms("École"), "ecole");
    }

    #[test]
    fn queries_become_terms_prefixes_and_phrases() {
        let q = Query::parse("你好 deploy* \"Ship it\" the 会议室 会").unwrap();
        assert_eq!(
            q.terms,
            vec![
                Term::Word("你好".into()),
                Term::Prefix("deploy".into()),
                Term::Phrase(vec!["ship".into(), "it".into()]),
                Term::Phrase(vec!["会议".into(), "议室".into()]),
                Term::Prefix("会".into()),
            ]
        );
        assert_eq!(
            q.fts5(),
            "\"你好\" AND \"deploy\"* AND \"ship it\" AND \"会议 议室\" AND \"会\"*"
        );
        assert_eq!(
            q.mysql(),
            "+zq你好 +zqdeploy* +\"zqship zqit\" +\"zq会议 zq议室\" +zq会*"
        );
    }

    #[test]
    fn punctuation_and_stop_words_alone_ask_for_nothing_and_limits_hold() {
        assert!(Query::parse("!!! ... the").unwrap().is_empty());
        assert!(Query::parse("").unwrap().is_empty());
        assert_eq!(Query::parse(&"x".repeat(257)), Err(QueryError::TooLong));
        let many = (0..21)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Query::parse(&many), Err(QueryError::TooManyTerms));
        // A quote with nothing in it, or unbalanced, is not an error.
        assert_eq!(Query::parse("\"\" \"ship").unwrap().terms.len(), 1);
    }

    #[test]
    fn spans_are_byte_ranges_of_the_matches_in_the_text() {
        let body = "明天的会议, Deployment at 9; 会议室见";
        let q = Query::parse("会议 deploy*").unwrap();
        let got: Vec<&str> = q.spans(body).iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec!["会议", "Deployment", "会议"]);
        let q = Query::parse("\"deployment at\"").unwrap();
        let got: Vec<&str> = q.spans(body).iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec!["Deployment at"]);
    }

    #[test]
    fn mysql_terms_are_prefixed() {
        assert_eq!(mysql_terms("你好 a"), "zq你好 zqa");
        assert_eq!(mysql_terms(""), "");
    }
}
