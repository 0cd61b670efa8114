//! The content of the results message (cli.md "The results message"): the subject, the text
//! and HTML alternatives (RFC 2046 §5.1.4) and the `results.csv` attachment (RFC 4180), plus
//! the `quiz` object of the JSON report.
//!
//! The HTML is written for mail clients: tables and inline styles only (many clients drop
//! `<style>` blocks and classes), `bgcolor`/`width` attributes as fallbacks for clients that
//! ignore CSS, no scripts and no external images. Every piece of quiz or user text is escaped.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::format::{letter, Question, Quiz};
use super::runner::Attempt;
use super::score::{tenths, Score};
use super::text::{csv_record, html_escape, html_multiline};

pub(crate) const GREEN: &str = "#2e7d32";
pub(crate) const RED: &str = "#c62828";
pub(crate) const GREY: &str = "#e0e0e0";
pub(crate) const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";

/// The `quiz` object of the JSON report (cli.md "JSON report").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuizReport {
    pub title: String,
    pub name: String,
    pub score: usize,
    pub total: usize,
    pub percent: f64,
    pub passed: bool,
}

impl QuizReport {
    pub fn new(quiz: &Quiz, attempt: &Attempt) -> QuizReport {
        QuizReport {
            title: quiz.title.clone(),
            name: attempt.name.clone(),
            score: attempt.score.score,
            total: attempt.score.total,
            percent: attempt.score.percent,
            passed: attempt.score.passed,
        }
    }
}

/// `Quiz results: TITLE — NAME scored S/T (P%)`. Title and name are single-line by
/// validation; the message layer encodes non-ASCII (RFC 2047).
pub fn subject(quiz: &Quiz, name: &str, score: &Score) -> String {
    format!(
        "Quiz results: {} — {name} scored {}/{} ({}%)",
        quiz.title,
        score.score,
        score.total,
        score.percent_text()
    )
}

fn verdict(score: &Score) -> &'static str {
    if score.passed {
        "passed"
    } else {
        "failed"
    }
}

fn choice(question: &Question, index: usize) -> String {
    format!("{}) {}", letter(index), question.choices[index])
}

/// The text/plain part: score, pass or fail, then every question with the answer given, the
/// correct one and the explanation.
pub fn results_text(quiz: &Quiz, attempt: &Attempt) -> String {
    let score = &attempt.score;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "{}", quiz.title);
    let _ = writeln!(s);
    let _ = writeln!(s, "Name:   {}", attempt.name);
    let _ = writeln!(s, "Score:  {score}");
    let _ = writeln!(
        s,
        "Result: {} (pass mark {}%)",
        verdict(score),
        quiz.pass_percent
    );
    let total = quiz.questions.len();
    for (i, (q, &given)) in quiz.questions.iter().zip(&attempt.answers).enumerate() {
        let mark = if given == q.answer {
            "✓ right"
        } else {
            "✗ wrong"
        };
        let _ = writeln!(s);
        let _ = writeln!(s, "{}/{total} {mark}", i + 1);
        let _ = writeln!(s, "{}", q.prompt);
        let _ = writeln!(s, "  Your answer: {}", choice(q, given));
        let _ = writeln!(s, "  Correct:     {}", choice(q, q.answer));
        if let Some(explain) = &q.explain {
            let _ = writeln!(s, "  {}", explain.replace('\n', "\n  "));
        }
    }
    s
}

/// A horizontal bar as a one-row table: the filled cell's width is `percent` of the bar.
/// Empty cells get `&nbsp;` because some clients collapse empty cells to nothing.
pub(crate) fn html_bar(percent: usize, color: &str, height: u32) -> String {
    let cell = |width: usize, color: &str| {
        format!(
            "<td width=\"{width}%\" bgcolor=\"{color}\" style=\"width:{width}%;background-color:{color};height:{height}px;font-size:1px;line-height:1px;\">&nbsp;</td>"
        )
    };
    let percent = percent.min(100);
    let mut cells = String::new();
    if percent > 0 {
        cells.push_str(&cell(percent, color));
    }
    if percent < 100 {
        cells.push_str(&cell(100 - percent, GREY));
    }
    format!(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"width:100%;border-collapse:collapse;\"><tr>{cells}</tr></table>"
    )
}

/// Opens a complete HTML document with a centred 600-pixel column, the width most mail
/// clients render without scrolling.
pub(crate) fn html_open(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width\">\n<title>{}</title>\n</head>\n<body style=\"margin:0;padding:0;background-color:#f5f5f5;\">\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"#f5f5f5\"><tr><td align=\"center\" style=\"padding:16px;\">\n<table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"#ffffff\" style=\"width:600px;max-width:100%;background-color:#ffffff;{FONT}color:#212121;\"><tr><td style=\"padding:24px;\">\n",
        html_escape(title)
    )
}

pub(crate) const HTML_CLOSE: &str = "</td></tr></table>\n</td></tr></table>\n</body>\n</html>\n";

/// The text/html part: the same content as [`results_text`], with the score drawn as a bar
/// and every question marked ✓ or ✗ in colour.
pub fn results_html(quiz: &Quiz, attempt: &Attempt) -> String {
    let score = &attempt.score;
    let (color, word) = if score.passed {
        (GREEN, "Passed")
    } else {
        (RED, "Failed")
    };
    let mut h = html_open(&format!("Quiz results: {}", quiz.title));
    let _ = writeln!(
        h,
        "<h1 style=\"margin:0 0 8px 0;font-size:22px;{FONT}\">{}</h1>",
        html_escape(&quiz.title)
    );
    let _ = writeln!(
        h,
        "<p style=\"margin:0 0 12px 0;font-size:16px;\">{} scored <strong>{}/{}</strong> ({}%): <strong style=\"color:{color};\">{word}</strong> <span style=\"color:#616161;\">(pass mark {}%)</span></p>",
        html_escape(&attempt.name),
        score.score,
        score.total,
        score.percent_text(),
        quiz.pass_percent
    );
    let filled = (tenths(score.score, score.total) + 5) / 10;
    let _ = writeln!(h, "{}", html_bar(filled, color, 16));
    let _ = writeln!(
        h,
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"width:100%;border-collapse:collapse;margin-top:16px;\">"
    );
    let total = quiz.questions.len();
    for (i, (q, &given)) in quiz.questions.iter().zip(&attempt.answers).enumerate() {
        let right = given == q.answer;
        let (mark, mark_color, label) = if right {
            ("✓", GREEN, "right")
        } else {
            ("✗", RED, "wrong")
        };
        let _ = writeln!(
            h,
            "<tr><td valign=\"top\" width=\"32\" style=\"width:32px;padding:12px 8px 12px 0;border-top:1px solid {GREY};font-size:20px;font-weight:bold;color:{mark_color};\" title=\"{label}\">{mark}</td>"
        );
        let _ = writeln!(
            h,
            "<td valign=\"top\" style=\"padding:12px 0;border-top:1px solid {GREY};font-size:14px;line-height:1.4;\">"
        );
        let _ = writeln!(
            h,
            "<div style=\"color:#616161;font-size:12px;\">Question {}/{total}: {label}</div>",
            i + 1
        );
        let _ = writeln!(
            h,
            "<div style=\"font-weight:bold;margin:2px 0 6px 0;\">{}</div>",
            html_multiline(&q.prompt)
        );
        let _ = writeln!(
            h,
            "<div>Your answer: <span style=\"color:{mark_color};\">{}</span></div>",
            html_escape(&choice(q, given))
        );
        let _ = writeln!(
            h,
            "<div>Correct: <span style=\"color:{GREEN};\">{}</span></div>",
            html_escape(&choice(q, q.answer))
        );
        if let Some(explain) = &q.explain {
            let _ = writeln!(
                h,
                "<div style=\"color:#424242;margin-top:6px;\">{}</div>",
                html_multiline(explain)
            );
        }
        let _ = writeln!(h, "</td></tr>");
    }
    h.push_str("</table>\n");
    h.push_str(HTML_CLOSE);
    h
}

/// The `results.csv` attachment: header `question,given,correct,ok`, one record per question,
/// CRLF line ends (RFC 4180 §2), formula-like cells neutralised.
pub fn results_csv(quiz: &Quiz, attempt: &Attempt) -> String {
    let mut csv = csv_record(["question", "given", "correct", "ok"]);
    for (q, &given) in quiz.questions.iter().zip(&attempt.answers) {
        let ok = if given == q.answer { "true" } else { "false" };
        csv.push_str(&csv_record([
            q.prompt.as_str(),
            &choice(q, given),
            &choice(q, q.answer),
            ok,
        ]));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiz() -> Quiz {
        Quiz {
            title: "SMTP <basics>".into(),
            pass_percent: 50,
            questions: vec![
                Question {
                    prompt: "Which port, with \"STARTTLS\"?".into(),
                    choices: vec!["25".into(), "587".into()],
                    answer: 1,
                    explain: Some("RFC 6409 §3.1.".into()),
                },
                Question {
                    prompt: "<script>alert(1)</script>\nsecond line".into(),
                    choices: vec!["=1+1".into(), "@x".into(), "a & b".into()],
                    answer: 2,
                    explain: None,
                },
            ],
        }
    }

    fn attempt(name: &str, answers: Vec<usize>) -> Attempt {
        Attempt::new(&quiz(), name.into(), answers)
    }

    #[test]
    fn subject_matches_the_contract() {
        let q = Quiz {
            title: "SMTP fundamentals".into(),
            ..quiz()
        };
        let s = Score::new(8, 10, 60);
        assert_eq!(
            subject(&q, "Ada", &s),
            "Quiz results: SMTP fundamentals — Ada scored 8/10 (80%)"
        );
        assert_eq!(
            subject(&q, "Ada", &Score::new(2, 3, 60)),
            "Quiz results: SMTP fundamentals — Ada scored 2/3 (66.7%)"
        );
    }

    #[test]
    fn text_lists_every_question() {
        let text = results_text(&quiz(), &attempt("Ada", vec![1, 0]));
        let expected = "SMTP <basics>\n\nName:   Ada\nScore:  1/2 (50%)\nResult: passed (pass mark 50%)\n\n1/2 ✓ right\nWhich port, with \"STARTTLS\"?\n  Your answer: b) 587\n  Correct:     b) 587\n  RFC 6409 §3.1.\n\n2/2 ✗ wrong\n<script>alert(1)</script>\nsecond line\n  Your answer: a) =1+1\n  Correct:     c) a & b\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn html_escapes_all_quiz_and_user_text() {
        let html = results_html(&quiz(), &attempt("<script>evil()</script>", vec![0, 2]));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;evil()&lt;/script&gt; scored"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;<br>\nsecond line"));
        assert!(html.contains("<title>Quiz results: SMTP &lt;basics&gt;</title>"));
        assert!(html.contains("Which port, with &quot;STARTTLS&quot;?"));
        assert!(html.contains("c) a &amp; b"));
    }

    #[test]
    fn html_is_mail_client_friendly() {
        let html = results_html(&quiz(), &attempt("Ada", vec![1, 0]));
        for banned in [
            "<script", "class=", "<style", "<img", "src=", "http:", "https:",
        ] {
            assert!(!html.contains(banned), "{banned}");
        }
        for tag in ["table", "tr", "td", "div", "html", "body", "head"] {
            assert_eq!(
                html.matches(&format!("<{tag}")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "<{tag}> balanced"
            );
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
        // Every question shows the answer given and the correct one, right or wrong.
        assert_eq!(html.matches("<div>Your answer: ").count(), 2);
        assert_eq!(html.matches("<div>Correct: ").count(), 2);
        // Right answer ✓ in green, wrong one ✗ in red.
        assert!(html.contains(&format!("color:{GREEN};\" title=\"right\">✓</td>")));
        assert!(html.contains(&format!("color:{RED};\" title=\"wrong\">✗</td>")));
        // 1 of 2: half the bar filled, in green because 50 % passes.
        assert!(html.contains(&format!("<td width=\"50%\" bgcolor=\"{GREEN}\"")));
        assert!(html.contains(&format!("<td width=\"50%\" bgcolor=\"{GREY}\"")));
    }

    #[test]
    fn bar_widths_add_up() {
        let full = html_bar(100, GREEN, 16);
        assert_eq!(full.matches("<td").count(), 1);
        let empty = html_bar(0, RED, 16);
        assert_eq!(empty.matches("<td").count(), 1);
        assert!(empty.contains(&format!("width=\"100%\" bgcolor=\"{GREY}\"")));
        let some = html_bar(67, RED, 16);
        assert!(some.contains("width=\"67%\" bgcolor=\"#c62828\""));
        assert!(some.contains("width=\"33%\" bgcolor=\"#e0e0e0\""));
        // 2/3 → 66.7 % → 67 % of the bar.
        let q = Quiz {
            questions: vec![quiz().questions[0].clone(); 3],
            ..quiz()
        };
        let html = results_html(&q, &Attempt::new(&q, "A".into(), vec![1, 1, 0]));
        assert!(html.contains(&format!("<td width=\"67%\" bgcolor=\"{GREEN}\"")));
    }

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let csv = results_csv(&quiz(), &attempt("Ada", vec![1, 0]));
        let expected = "question,given,correct,ok\r\n\
             \"Which port, with \"\"STARTTLS\"\"?\",b) 587,b) 587,true\r\n\
             \"<script>alert(1)</script>\nsecond line\",a) =1+1,c) a & b,false\r\n";
        assert_eq!(csv, expected);
        let q = Quiz {
            questions: vec![Question {
                prompt: "=HYPERLINK(\"http://evil\")".into(),
                ..quiz().questions[0].clone()
            }],
            ..quiz()
        };
        let csv = results_csv(&q, &Attempt::new(&q, "A".into(), vec![0]));
        assert!(csv.contains("\r\n\"'=HYPERLINK(\"\"http://evil\"\")\",a) 25,b) 587,false\r\n"));
    }

    #[test]
    fn report_serialises_to_the_contract_shape() {
        let q = Quiz {
            title: "SMTP fundamentals".into(),
            ..quiz()
        };
        let a = Attempt::new(&q, "Ada".into(), vec![1, 2]);
        let json = serde_json::to_value(QuizReport::new(&q, &a)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"title": "SMTP fundamentals", "name": "Ada", "score": 2, "total": 2, "percent": 100.0, "passed": true})
        );
    }
}
