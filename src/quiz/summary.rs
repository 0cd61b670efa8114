//! The class summary for grade mode: average, median, pass rate, the hardest questions and a
//! score histogram, as text, HTML (tables and inline styles, like the results message) and CSV
//! (RFC 4180, one record per student).

use std::fmt::Write as _;

use super::format::{letter, Quiz};
use super::results::{html_bar, html_open, FONT, GREEN, HTML_CLOSE, RED};
use super::roster::RosterEntry;
use super::score::{percent_text, tenths};
use super::text::{csv_record, html_escape};

/// How many of the hardest questions the summary names.
const HARDEST: usize = 3;

/// Width in characters of the longest text histogram bar.
const TEXT_BAR: usize = 40;

/// Numbers about one class. With no students every figure is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSummary {
    pub count: usize,
    /// Questions in the quiz (the highest possible score).
    pub total: usize,
    /// Mean score in points.
    pub average: f64,
    /// Median score in points: the middle score, or the mean of the two middle ones.
    pub median: f64,
    pub passed: usize,
    /// `passed / count` in percent, one decimal.
    pub pass_rate: f64,
    /// Up to three questions with the lowest correct rate; ties go to the earlier question.
    pub hardest: Vec<QuestionStat>,
    /// `histogram[s]` students scored `s`, for `s` in `0..=total`.
    pub histogram: Vec<usize>,
}

/// How one question went across the class.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionStat {
    /// 1-based question number.
    pub number: usize,
    /// Students who answered it correctly.
    pub correct: usize,
    /// `correct / count` in percent, one decimal.
    pub rate: f64,
}

/// Computes the class figures from scored roster entries.
pub fn summarise(quiz: &Quiz, entries: &[RosterEntry]) -> ClassSummary {
    let count = entries.len();
    let total = quiz.questions.len();
    let mut scores: Vec<usize> = entries.iter().map(|e| e.attempt.score.score).collect();
    scores.sort_unstable();
    let average = if count == 0 {
        0.0
    } else {
        scores.iter().sum::<usize>() as f64 / count as f64
    };
    let median = match count {
        0 => 0.0,
        n if n % 2 == 1 => scores[n / 2] as f64,
        n => (scores[n / 2 - 1] + scores[n / 2]) as f64 / 2.0,
    };
    let passed = entries.iter().filter(|e| e.attempt.score.passed).count();
    let mut stats: Vec<QuestionStat> = quiz
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let correct = entries
                .iter()
                .filter(|e| e.attempt.answers.get(i) == Some(&q.answer))
                .count();
            QuestionStat {
                number: i + 1,
                correct,
                rate: tenths(correct, count) as f64 / 10.0,
            }
        })
        .collect();
    stats.sort_by_key(|s| (s.correct, s.number));
    stats.truncate(HARDEST);
    let mut histogram = vec![0; total + 1];
    for &s in &scores {
        if let Some(slot) = histogram.get_mut(s) {
            *slot += 1;
        }
    }
    ClassSummary {
        count,
        total,
        average,
        median,
        passed,
        pass_rate: tenths(passed, count) as f64 / 10.0,
        hardest: stats,
        histogram,
    }
}

/// A number of points with at most one decimal: `7`, `7.5`, `7.3`.
fn points(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// Average as a percentage of the total, one decimal, as text.
fn average_percent(summary: &ClassSummary) -> String {
    if summary.total == 0 {
        return "0".into();
    }
    let value = summary.average * 100.0 / summary.total as f64;
    points(value)
}

/// The first line of a prompt, cut to `max` characters, for one-line listings.
fn short(prompt: &str, max: usize) -> String {
    let first = prompt.lines().next().unwrap_or("");
    if first.chars().count() > max || prompt.contains('\n') {
        let cut: String = first.chars().take(max).collect();
        format!("{}…", cut.trim_end())
    } else {
        first.to_owned()
    }
}

/// `Class results: TITLE — N students, average A/T (P%), X passed`
pub fn summary_subject(quiz: &Quiz, summary: &ClassSummary) -> String {
    format!(
        "Class results: {} — {} students, average {}/{} ({}%), {} passed",
        quiz.title,
        summary.count,
        points(summary.average),
        summary.total,
        average_percent(summary),
        summary.passed
    )
}

/// The text/plain summary: figures, hardest questions, a `#` histogram and every student.
pub fn summary_text(quiz: &Quiz, summary: &ClassSummary, entries: &[RosterEntry]) -> String {
    let mut s = String::new();
    let t = summary.total;
    // Writing to a String cannot fail.
    let _ = writeln!(s, "Class results: {}", quiz.title);
    let _ = writeln!(s);
    let _ = writeln!(s, "Students: {}", summary.count);
    let _ = writeln!(
        s,
        "Average:  {}/{t} ({}%)",
        points(summary.average),
        average_percent(summary)
    );
    let _ = writeln!(s, "Median:   {}/{t}", points(summary.median));
    let _ = writeln!(
        s,
        "Passed:   {} of {} ({}%, pass mark {}%)",
        summary.passed,
        summary.count,
        percent_text(tenths(summary.passed, summary.count)),
        quiz.pass_percent
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Hardest questions:");
    for stat in &summary.hardest {
        let prompt = quiz
            .questions
            .get(stat.number - 1)
            .map_or(String::new(), |q| short(&q.prompt, 60));
        let _ = writeln!(
            s,
            "  {}/{t}  {}% correct  {prompt}",
            stat.number,
            percent_text(tenths(stat.correct, summary.count))
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Score distribution:");
    let most = summary.histogram.iter().copied().max().unwrap_or(0);
    let width = t.to_string().len();
    for (score, &n) in summary.histogram.iter().enumerate() {
        let bar = if most == 0 {
            0
        } else {
            (n * TEXT_BAR).div_ceil(most)
        };
        let _ = writeln!(s, "  {score:>width$}/{t} | {} {n}", "#".repeat(bar));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Students:");
    for e in entries {
        let score = &e.attempt.score;
        let verdict = if score.passed { "passed" } else { "failed" };
        let _ = writeln!(s, "  {} <{}>: {score} {verdict}", e.attempt.name, e.email);
    }
    s
}

/// The text/html summary: figures, the hardest questions, one histogram bar per score value
/// `0..=total`, and a table of students, in tables with inline styles.
pub fn summary_html(quiz: &Quiz, summary: &ClassSummary, entries: &[RosterEntry]) -> String {
    let t = summary.total;
    let cell = "padding:4px 8px;border-bottom:1px solid #e0e0e0;font-size:14px;";
    let table = "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"width:100%;border-collapse:collapse;margin:8px 0 16px 0;\">";
    let heading = |text: &str| {
        format!("<h2 style=\"margin:16px 0 4px 0;font-size:17px;{FONT}\">{text}</h2>\n")
    };
    let mut h = html_open(&format!("Class results: {}", quiz.title));
    let _ = writeln!(
        h,
        "<h1 style=\"margin:0 0 8px 0;font-size:22px;{FONT}\">Class results: {}</h1>",
        html_escape(&quiz.title)
    );
    let _ = writeln!(h, "{table}");
    for (label, value) in [
        ("Students", summary.count.to_string()),
        (
            "Average",
            format!(
                "{}/{t} ({}%)",
                points(summary.average),
                average_percent(summary)
            ),
        ),
        ("Median", format!("{}/{t}", points(summary.median))),
        (
            "Passed",
            format!(
                "{} of {} ({}%, pass mark {}%)",
                summary.passed,
                summary.count,
                percent_text(tenths(summary.passed, summary.count)),
                quiz.pass_percent
            ),
        ),
    ] {
        let _ = writeln!(
            h,
            "<tr><td width=\"120\" style=\"{cell}color:#616161;\">{label}</td><td style=\"{cell}font-weight:bold;\">{value}</td></tr>"
        );
    }
    h.push_str("</table>\n");

    h.push_str(&heading("Hardest questions"));
    let _ = writeln!(h, "{table}");
    for stat in &summary.hardest {
        let prompt = quiz
            .questions
            .get(stat.number - 1)
            .map_or(String::new(), |q| short(&q.prompt, 80));
        let pct = tenths(stat.correct, summary.count);
        let _ = writeln!(
            h,
            "<tr><td width=\"60\" style=\"{cell}\">{}/{t}</td><td style=\"{cell}\">{}</td><td width=\"90\" align=\"right\" style=\"{cell}color:{RED};\">{}% correct</td></tr>",
            stat.number,
            html_escape(&prompt),
            percent_text(pct)
        );
    }
    h.push_str("</table>\n");

    h.push_str(&heading("Score distribution"));
    let _ = writeln!(h, "{table}");
    let most = summary.histogram.iter().copied().max().unwrap_or(0);
    for (score, &n) in summary.histogram.iter().enumerate() {
        let width = if most == 0 {
            0
        } else {
            (n * 100).div_ceil(most)
        };
        let passing = score * 100 >= usize::from(quiz.pass_percent) * t;
        let color = if passing { GREEN } else { RED };
        let _ = writeln!(
            h,
            "<tr><td width=\"60\" style=\"padding:2px 8px 2px 0;font-size:13px;white-space:nowrap;\">{score}/{t}</td><td style=\"padding:2px 0;\">{}</td><td width=\"40\" align=\"right\" style=\"padding:2px 0 2px 8px;font-size:13px;\">{n}</td></tr>",
            html_bar(width, color, 14)
        );
    }
    h.push_str("</table>\n");

    h.push_str(&heading("Students"));
    let _ = writeln!(h, "{table}");
    for e in entries {
        let score = &e.attempt.score;
        let (mark, color) = if score.passed {
            ("✓ passed", GREEN)
        } else {
            ("✗ failed", RED)
        };
        let _ = writeln!(
            h,
            "<tr><td style=\"{cell}\">{}<br><span style=\"color:#616161;font-size:12px;\">{}</span></td><td width=\"110\" style=\"{cell}\">{score}</td><td width=\"80\" style=\"{cell}color:{color};\">{mark}</td></tr>",
            html_escape(&e.attempt.name),
            html_escape(&e.email)
        );
    }
    h.push_str("</table>\n");
    h.push_str(HTML_CLOSE);
    h
}

/// The class CSV: `name,email,score,total,percent,passed` then one column per question, headed
/// `qN (L)` with the correct letter L, holding the letter each student gave. Formula-like
/// cells (a name starting with `=`) are neutralised.
pub fn summary_csv(quiz: &Quiz, entries: &[RosterEntry]) -> String {
    let mut header: Vec<String> = ["name", "email", "score", "total", "percent", "passed"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    header.extend(
        quiz.questions
            .iter()
            .enumerate()
            .map(|(i, q)| format!("q{} ({})", i + 1, letter(q.answer))),
    );
    let mut csv = csv_record(&header);
    for e in entries {
        let score = &e.attempt.score;
        let mut row = vec![
            e.attempt.name.clone(),
            e.email.clone(),
            score.score.to_string(),
            score.total.to_string(),
            format!("{:.1}", score.percent),
            score.passed.to_string(),
        ];
        row.extend(e.attempt.answers.iter().map(|&a| letter(a).to_string()));
        csv.push_str(&csv_record(&row));
    }
    csv
}
