//! Diagnostics: what is wrong, where (file, line, column, byte range), and how to fix it.
//!
//! They are data, not text, so that the appliance compiler renders them like its own
//! (`--> zone-file:line:col`, the line, a caret, `= help:`); [`Diagnostic::render`]
//! renders them the same way for tools and tests that have no renderer of their own.

use std::fmt::Write as _;

/// A region of a zone file: byte range plus the 1-based line and column (in characters)
/// of its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// Byte offset of the first byte.
    pub lo: usize,
    /// Byte offset one past the last byte.
    pub hi: usize,
    /// 1-based line of `lo`.
    pub line: u32,
    /// 1-based column (in characters) of `lo`.
    pub col: u32,
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Stops the build.
    Error,
    /// Shown; the zone is compiled anyway.
    Warning,
}

/// A span with a message under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One message about one zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// The zone file, as it was named to the compiler.
    pub file: String,
    /// The headline.
    pub message: String,
    /// The place the message is about.
    pub primary: Label,
    /// Other places in the same file that explain it (the first SOA, the CNAME ...).
    pub secondary: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(file: &str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            file: file.to_string(),
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(file: &str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(file, span, message)
        }
    }

    /// Sets the text under the primary caret.
    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary place.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Sets the fix.
    pub fn help(mut self, message: impl Into<String>) -> Diagnostic {
        self.help = Some(message.into());
        self
    }

    /// `file:line:col`.
    pub fn location(&self) -> String {
        format!(
            "{}:{}:{}",
            self.file, self.primary.span.line, self.primary.span.col
        )
    }

    /// Renders the diagnostic against the file's text, as rustc and the appliance
    /// compiler do.
    pub fn render(&self, text: &str) -> String {
        let mut out = String::new();
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let _ = writeln!(out, "{level}: {}", self.message);
        let mut labels: Vec<(&Label, bool)> = vec![(&self.primary, true)];
        labels.extend(self.secondary.iter().map(|l| (l, false)));
        let max_line = labels.iter().map(|(l, _)| l.span.line).max().unwrap_or(1);
        let w = max_line.to_string().len().max(2);
        let pad = " ".repeat(w);
        let _ = writeln!(out, "{pad}--> {}", self.location());
        let _ = writeln!(out, "{pad} |");
        let mut lines: Vec<u32> = labels.iter().map(|(l, _)| l.span.line).collect();
        lines.sort_unstable();
        lines.dedup();
        let mut prev: Option<u32> = None;
        for line in lines {
            if prev.is_some_and(|p| line > p + 1) {
                let _ = writeln!(out, "...");
            }
            prev = Some(line);
            let (start, src) = line_text(text, line);
            let shown = src.replace('\t', "    ");
            if shown.is_empty() {
                let _ = writeln!(out, "{line:>w$} |");
            } else {
                let _ = writeln!(out, "{line:>w$} | {shown}");
            }
            let mut on_line: Vec<&(&Label, bool)> =
                labels.iter().filter(|(l, _)| l.span.line == line).collect();
            on_line.sort_by_key(|(l, p)| (!p, l.span.lo));
            for (l, primary) in on_line {
                let width = |s: &str| {
                    s.chars()
                        .map(|c| if c == '\t' { 4 } else { 1 })
                        .sum::<usize>()
                };
                let lo = l.span.lo.saturating_sub(start).min(src.len());
                let hi = l.span.hi.saturating_sub(start).clamp(lo, src.len());
                let col = src.get(..lo).map_or(0, width);
                let len = src.get(lo..hi).map_or(0, width).max(1);
                let mark = if *primary { "^" } else { "-" };
                let mut caret = format!("{pad} | {}{}", " ".repeat(col), mark.repeat(len));
                if !l.message.is_empty() {
                    caret.push(' ');
                    caret.push_str(&l.message);
                }
                let _ = writeln!(out, "{caret}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// The byte offset where 1-based `line` starts, and its text without the terminator.
fn line_text(text: &str, line: u32) -> (usize, &str) {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return (text.len(), ""),
        }
    }
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    (start, text[start..end].trim_end_matches('\r'))
}
