//! Diagnostics in the style of rustc: a message, labelled source spans, notes.

use std::fmt::{self, Write as _};

/// Index of a [`SourceFile`] in a [`SourceMap`].
pub type FileId = u32;

/// A region of a source file: byte range plus the 1-based line and column (in
/// characters) of its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// Which file.
    pub file: FileId,
    /// Byte offset of the first byte.
    pub lo: u32,
    /// Byte offset one past the last byte.
    pub hi: u32,
    /// 1-based line of `lo`.
    pub line: u32,
    /// 1-based column (in characters) of `lo`.
    pub col: u32,
}

impl Span {
    /// The span from the start of `self` to the end of `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            hi: other.hi.max(self.hi),
            ..self
        }
    }
}

/// One source text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path shown in messages.
    pub path: String,
    /// The text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A file with the path to show in messages.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// Number of lines (a final newline does not start a new line).
    pub fn line_count(&self) -> usize {
        if self.text.ends_with('\n') {
            self.line_starts.len() - 1
        } else {
            self.line_starts.len()
        }
        .max(1)
    }

    /// Text of the 1-based line `line`, without its line terminator.
    pub fn line_text(&self, line: u32) -> &str {
        let i = (line as usize).saturating_sub(1);
        let Some(&start) = self.line_starts.get(i) else {
            return "";
        };
        let end = self
            .line_starts
            .get(i + 1)
            .map_or(self.text.len(), |&e| e - 1);
        self.text[start..end.max(start)].trim_end_matches('\r')
    }

    /// Byte offset where the 1-based line `line` starts.
    pub fn line_start(&self, line: u32) -> usize {
        self.line_starts
            .get((line as usize).saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len())
    }
}

/// The files diagnostics may point into.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// Adds a file and returns its id.
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        (self.files.len() - 1) as FileId
    }

    /// The file `id`.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id as usize]
    }
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Stops the build.
    Error,
    /// Printed, does not stop the build.
    Warning,
}

/// A span with a message under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
    /// The primary label gets `^^^` and the `-->` location; secondary ones get `---`.
    pub primary: bool,
}

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// The headline.
    pub message: String,
    /// Source locations, the primary one first.
    pub labels: Vec<Label>,
    /// `= help: ...` / `= note: ...` lines, in order.
    pub notes: Vec<(&'static str, String)>,
}

impl Diagnostic {
    /// An error.
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A warning.
    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// Sets the primary location.
    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.insert(
            0,
            Label {
                span,
                message: message.into(),
                primary: true,
            },
        );
        self
    }

    /// Adds a secondary location.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    /// Adds a `= help:` line.
    pub fn help(mut self, message: impl Into<String>) -> Diagnostic {
        self.notes.push(("help", message.into()));
        self
    }

    /// Adds a `= note:` line.
    pub fn note(mut self, message: impl Into<String>) -> Diagnostic {
        self.notes.push(("note", message.into()));
        self
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span)
    }

    /// Renders this diagnostic against `sources`.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let _ = writeln!(out, "{level}: {}", self.message);
        let max_line = self.labels.iter().map(|l| l.span.line).max().unwrap_or(1);
        let w = max_line.to_string().len().max(2);
        let pad = " ".repeat(w);

        // Group labels by file, the primary label's file first.
        let mut files: Vec<FileId> = Vec::new();
        for l in &self.labels {
            if !files.contains(&l.span.file) {
                files.push(l.span.file);
            }
        }
        for (fi, &file) in files.iter().enumerate() {
            let src = sources.get(file);
            let labels: Vec<&Label> = self.labels.iter().filter(|l| l.span.file == file).collect();
            let head = labels.iter().find(|l| l.primary).unwrap_or(&labels[0]);
            let arrow = if fi == 0 { "-->" } else { ":::" };
            let _ = writeln!(
                out,
                "{pad}{arrow} {}:{}:{}",
                src.path, head.span.line, head.span.col
            );
            let _ = writeln!(out, "{pad} |");
            let mut lines: Vec<u32> = labels.iter().map(|l| l.span.line).collect();
            lines.sort_unstable();
            lines.dedup();
            let mut prev: Option<u32> = None;
            for line in lines {
                if prev.is_some_and(|p| line > p + 1) {
                    let _ = writeln!(out, "...");
                }
                prev = Some(line);
                let text = src.line_text(line);
                let shown = expand_tabs(text);
                if shown.is_empty() {
                    let _ = writeln!(out, "{line:>w$} |");
                } else {
                    let _ = writeln!(out, "{line:>w$} | {shown}");
                }
                let mut on_line: Vec<&&Label> =
                    labels.iter().filter(|l| l.span.line == line).collect();
                on_line.sort_by_key(|l| (!l.primary, l.span.lo));
                for l in on_line {
                    let (start, len) = caret_columns(src, l.span);
                    let mark = if l.primary { "^" } else { "-" };
                    let mut caret = format!("{pad} | {}{}", " ".repeat(start), mark.repeat(len));
                    if !l.message.is_empty() {
                        caret.push(' ');
                        caret.push_str(&l.message);
                    }
                    let _ = writeln!(out, "{caret}");
                }
            }
        }
        for (kind, note) in &self.notes {
            let mut first = true;
            for part in note.split('\n') {
                if first {
                    let _ = writeln!(out, "{pad} = {kind}: {part}");
                    first = false;
                } else {
                    let _ = writeln!(out, "{pad}   {}{part}", " ".repeat(kind.len() + 2));
                }
            }
        }
        out
    }
}

fn expand_tabs(s: &str) -> String {
    s.replace('\t', "    ")
}

/// Display column (0-based, tabs as 4) and caret width of `span` on its first line.
fn caret_columns(src: &SourceFile, span: Span) -> (usize, usize) {
    let line_start = src.line_start(span.line);
    let text = src.line_text(span.line);
    let lo = (span.lo as usize)
        .saturating_sub(line_start)
        .min(text.len());
    let hi = (span.hi as usize)
        .saturating_sub(line_start)
        .min(text.len());
    let width = |s: &str| {
        s.chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum::<usize>()
    };
    let start = text.get(..lo).map_or(0, width);
    let len = text.get(lo..hi.max(lo)).map_or(0, width);
    (start, len.max(1))
}

/// Everything that went wrong, with the sources to show it against.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    /// The sources the spans point into.
    pub sources: SourceMap,
    /// The diagnostics, in the order found.
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Number of errors (warnings not counted).
    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.level == Level::Error).count()
    }

    /// Whether there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// The rendered warnings only, one string per warning.
    pub fn render_warnings(&self) -> Vec<String> {
        self.list
            .iter()
            .filter(|d| d.level == Level::Warning)
            .map(|d| d.render(&self.sources))
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    /// All diagnostics separated by blank lines, then rustc's closing line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&d.render(&self.sources))?;
        }
        match self.error_count() {
            0 => Ok(()),
            1 => f.write_str("\nerror: aborting due to 1 previous error\n"),
            n => write!(f, "\nerror: aborting due to {n} previous errors\n"),
        }
    }
}

impl std::error::Error for Diagnostics {}
