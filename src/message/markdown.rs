//! `--markdown-file`: the HTML alternative of a Markdown body (CommonMark 0.31 with the GFM
//! table and strikethrough extensions, parsed by pulldown-cmark).
//!
//! Two rules make it fit for mail:
//! - **Inline styles only.** Webmail (Gmail, Outlook on the web) strips `<style>` elements and
//!   `class` attributes, so tables, cells, code, `pre` and blockquotes carry `style="..."`.
//! - **Raw HTML is escaped, never passed through.** A CI log pasted into a report can hold
//!   `<script>` or `<img onerror=...>`; it is shown as text. Link and image URLs keep only
//!   the schemes mail needs (http, https, mailto, cid, and relative ones); any other (such as
//!   `javascript:` or `data:`) becomes an empty URL.
use std::collections::VecDeque;

use pulldown_cmark::{Alignment, CowStr, Event, Options, Parser, Tag, TagEnd};

const TABLE: &str = "border-collapse: collapse; margin: 0 0 16px 0";
const CELL: &str = "border: 1px solid #d0d7de; padding: 6px 13px";
const HEAD_CELL: &str =
    "border: 1px solid #d0d7de; padding: 6px 13px; font-weight: bold; background-color: #f6f8fa";
const CODE: &str = "font-family: Consolas, Menlo, 'Liberation Mono', monospace; font-size: 90%; \
                    background-color: #f6f8fa; padding: 2px 4px; border-radius: 3px";
const PRE: &str = "font-family: Consolas, Menlo, 'Liberation Mono', monospace; font-size: 90%; \
                   background-color: #f6f8fa; padding: 12px; border-radius: 6px; \
                   overflow: auto; line-height: 1.45";
const BLOCKQUOTE: &str = "margin: 0 0 16px 0; padding: 0 1em; color: #59636e; \
                          border-left: 4px solid #d0d7de";
const BODY: &str = "font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; \
                    font-size: 14px; line-height: 1.5; color: #1f2328";

/// The whole HTML document for a Markdown source: a `<meta charset>` (the part is also
/// labelled utf-8) and a styled body; nothing in it needs a stylesheet.
pub fn to_html(source: &str) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n<body style=\"",
    );
    html.push_str(BODY);
    html.push_str("\">\n");
    pulldown_cmark::html::push_html(&mut html, MailEvents::new(source));
    html.push_str("</body>\n</html>\n");
    html
}

/// The parser's events, with raw HTML turned into text and the styled elements written as
/// HTML of our own (the only `Event::Html` that reaches the writer).
struct MailEvents<'a> {
    parser: Parser<'a>,
    alignments: Vec<Alignment>,
    cell: usize,
    in_head: bool,
    /// Events to give before the parser's next one (the rest of an inline code span).
    queued: VecDeque<Event<'a>>,
}

impl<'a> MailEvents<'a> {
    fn new(source: &'a str) -> MailEvents<'a> {
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        MailEvents {
            parser: Parser::new_ext(source, options),
            alignments: Vec::new(),
            cell: 0,
            in_head: false,
            queued: VecDeque::new(),
        }
    }

    fn cell_start(&self) -> String {
        let (tag, style) = if self.in_head {
            ("th", HEAD_CELL)
        } else {
            ("td", CELL)
        };
        let align = match self.alignments.get(self.cell) {
            Some(Alignment::Left) => "; text-align: left",
            Some(Alignment::Center) => "; text-align: center",
            Some(Alignment::Right) => "; text-align: right",
            _ => "",
        };
        format!("<{tag} style=\"{style}{align}\">")
    }

    fn map(&mut self, event: Event<'a>) -> Event<'a> {
        let html = |s: String| Event::Html(CowStr::from(s));
        match event {
            // Raw HTML from the source: shown, never interpreted.
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
            Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
            Event::Start(Tag::Table(alignments)) => {
                self.alignments = alignments;
                html(format!("<table style=\"{TABLE}\">\n"))
            }
            Event::End(TagEnd::Table) => html("</tbody></table>\n".into()),
            Event::Start(Tag::TableHead) => {
                self.in_head = true;
                self.cell = 0;
                html("<thead><tr>".into())
            }
            Event::End(TagEnd::TableHead) => {
                self.in_head = false;
                html("</tr></thead><tbody>\n".into())
            }
            Event::Start(Tag::TableRow) => {
                self.cell = 0;
                html("<tr>".into())
            }
            Event::End(TagEnd::TableRow) => html("</tr>\n".into()),
            Event::Start(Tag::TableCell) => html(self.cell_start()),
            Event::End(TagEnd::TableCell) => {
                self.cell += 1;
                html(if self.in_head { "</th>" } else { "</td>" }.into())
            }
            Event::Code(code) => {
                // The code itself goes as a Text event, which the writer escapes.
                self.queued.push_back(Event::Text(code));
                self.queued.push_back(Event::Html("</code>".into()));
                html(format!("<code style=\"{CODE}\">"))
            }
            Event::Start(Tag::CodeBlock(_)) => html(format!("<pre style=\"{PRE}\"><code>")),
            Event::End(TagEnd::CodeBlock) => html("</code></pre>\n".into()),
            Event::Start(Tag::BlockQuote(_)) => {
                html(format!("<blockquote style=\"{BLOCKQUOTE}\">\n"))
            }
            Event::End(TagEnd::BlockQuote(_)) => html("</blockquote>\n".into()),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            }),
            other => other,
        }
    }
}

impl<'a> Iterator for MailEvents<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        if let Some(queued) = self.queued.pop_front() {
            return Some(queued);
        }
        let event = self.parser.next()?;
        Some(self.map(event))
    }
}

/// A URL kept when it is relative or uses a scheme mail needs; anything else (`javascript:`,
/// `data:`, `file:`, `vbscript:`) becomes empty. A scheme is letters, digits, `+`, `-`, `.`
/// before the first `:` (RFC 3986 §3.1), matched without case.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let trimmed = url.trim_start_matches(|c: char| c.is_ascii_whitespace() || c.is_control());
    let scheme = trimmed.split_once(':').map(|(s, _)| s).filter(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    match scheme {
        None => url,
        Some(s)
            if ["http", "https", "mailto", "cid"]
                .iter()
                .any(|ok| s.eq_ignore_ascii_case(ok)) =>
        {
            url
        }
        Some(_) => CowStr::from(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(source: &str) -> String {
        let html = to_html(source);
        let start = html.find("\">\n").unwrap() + 3;
        let end = html.rfind("</body>").unwrap();
        html[start..end].to_string()
    }

    #[test]
    fn a_table_gets_inline_styles_and_alignment() {
        let got = body("| Job | Result |\n|:---|---:|\n| build | ~~failed~~ ok |\n");
        assert_eq!(
            got,
            format!(
                "<table style=\"{TABLE}\">\n<thead><tr>\
                 <th style=\"{HEAD_CELL}; text-align: left\">Job</th>\
                 <th style=\"{HEAD_CELL}; text-align: right\">Result</th>\
                 </tr></thead><tbody>\n<tr>\
                 <td style=\"{CELL}; text-align: left\">build</td>\
                 <td style=\"{CELL}; text-align: right\"><del>failed</del> ok</td>\
                 </tr>\n</tbody></table>\n"
            )
        );
    }

    #[test]
    fn code_pre_and_blockquote_are_styled_and_nothing_uses_a_class_or_style_element() {
        let got = to_html("Run `a < b` now.\n\n```sh\necho <x>\n```\n\n> quoted\n");
        assert!(
            got.contains(&format!("<code style=\"{CODE}\">a &lt; b</code>")),
            "{got}"
        );
        assert!(
            got.contains(&format!(
                "<pre style=\"{PRE}\"><code>echo &lt;x&gt;\n</code></pre>"
            )),
            "{got}"
        );
        assert!(got.contains(&format!(
            "<blockquote style=\"{BLOCKQUOTE}\">\n<p>quoted</p>"
        )));
        assert!(!got.contains("<style") && !got.contains("class="), "{got}");
        assert!(got.starts_with("<!DOCTYPE html>\n") && got.ends_with("</html>\n"));
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let got = body("<script>alert(1)</script>\n\nSee <img src=x onerror=alert(1)> here.\n");
        assert!(!got.contains("<script") && !got.contains("<img"), "{got}");
        assert!(
            got.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{got}"
        );
        assert!(
            got.contains("See &lt;img src=x onerror=alert(1)&gt; here."),
            "{got}"
        );
    }

    #[test]
    fn only_safe_url_schemes_survive() {
        let got = body(
            "[a](javascript:alert(1)) [b](JavaScript:x) [c](https://example.com/?q=1&r=2) \
             [d](mailto:a@example.com) [e](rel/path.html) ![i](cid:chart.png) ![j](data:image/png;base64,AA)",
        );
        assert!(!got.to_ascii_lowercase().contains("javascript"), "{got}");
        assert!(!got.contains("data:"), "{got}");
        assert!(
            got.contains("href=\"https://example.com/?q=1&amp;r=2\""),
            "{got}"
        );
        assert!(got.contains("href=\"mailto:a@example.com\""), "{got}");
        assert!(got.contains("href=\"rel/path.html\""), "{got}");
        assert!(
            got.contains("<img src=\"cid:chart.png\" alt=\"i\""),
            "{got}"
        );
        assert!(got.contains("<a href=\"\">a</a>"), "{got}");
    }

    #[test]
    fn two_code_spans_in_a_row_close_each_one() {
        let got = body("`a` and `b`");
        assert_eq!(
            got,
            format!("<p><code style=\"{CODE}\">a</code> and <code style=\"{CODE}\">b</code></p>\n")
        );
    }
}
