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
        let label = format!("Q{}", stat.number);
        let pct = format!("{}%", percent_text(tenths(stat.correct, summary.count)));
        let _ = writeln!(s, "  {label:<4} {pct:>6} correct  {prompt}");
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
        let bar = "#".repeat(bar);
        let _ = writeln!(
            s,
            "  {score:>width$}/{t} | {bar}{}{n}",
            if bar.is_empty() { "" } else { " " }
        );
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
            "<tr><td width=\"50\" style=\"{cell}\">Q{}</td><td style=\"{cell}\">{}</td><td width=\"90\" align=\"right\" style=\"{cell}color:{RED};\">{}% correct</td></tr>",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::{Attempt, Question};
    use proptest::prelude::*;

    /// Four questions; the correct answers are a, b, c, d.
    fn quiz() -> Quiz {
        Quiz {
            title: "Mail <101>".into(),
            pass_percent: 50,
            questions: (0..4)
                .map(|i| Question {
                    prompt: format!("Question {i}?"),
                    choices: vec!["w".into(), "x".into(), "y".into(), "z".into()],
                    answer: i,
                    explain: None,
                })
                .collect(),
        }
    }

    fn entries(rows: &[(&str, &str, [usize; 4])]) -> Vec<RosterEntry> {
        let q = quiz();
        rows.iter()
            .enumerate()
            .map(|(i, (name, email, answers))| RosterEntry {
                line: i + 2,
                email: (*email).into(),
                attempt: Attempt::new(&q, (*name).into(), answers.to_vec()),
            })
            .collect()
    }

    /// Scores 4, 2, 2, 1, 0 (worked out by hand from the answer key a, b, c, d).
    fn five() -> Vec<RosterEntry> {
        entries(&[
            ("Ada", "ada@example.com", [0, 1, 2, 3]),
            ("Bob", "bob@example.com", [0, 1, 0, 0]),
            ("Cy", "cy@example.com", [1, 1, 2, 0]),
            ("Di", "di@example.com", [0, 0, 0, 0]),
            ("Ed", "ed@example.com", [1, 0, 0, 0]),
        ])
    }

    #[test]
    fn odd_count_figures() {
        let s = summarise(&quiz(), &five());
        assert_eq!(s.count, 5);
        assert_eq!(s.total, 4);
        // (4 + 2 + 2 + 1 + 0) / 5 = 1.8; sorted 0 1 2 2 4 → median 2.
        assert!((s.average - 1.8).abs() < 1e-9);
        assert_eq!(s.median, 2.0);
        // 2 of 4 is exactly the 50 % mark: Ada, Bob and Cy pass.
        assert_eq!(s.passed, 3);
        assert_eq!(s.pass_rate, 60.0);
        assert_eq!(s.histogram, [1, 1, 2, 0, 1]);
        // Correct per question: q1 3, q2 3, q3 2, q4 1 → hardest q4, q3, then q1 (tie with q2,
        // the earlier question wins).
        let hardest: Vec<(usize, usize, f64)> = s
            .hardest
            .iter()
            .map(|h| (h.number, h.correct, h.rate))
            .collect();
        assert_eq!(hardest, [(4, 1, 20.0), (3, 2, 40.0), (1, 3, 60.0)]);
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_two() {
        let e = five();
        let four = [e[0].clone(), e[1].clone(), e[3].clone(), e[4].clone()];
        let s = summarise(&quiz(), &four);
        // Scores 4 2 1 0 → sorted 0 1 2 4 → (1 + 2) / 2.
        assert_eq!(s.median, 1.5);
        assert!((s.average - 1.75).abs() < 1e-9);
        assert_eq!(s.pass_rate, 50.0);
    }

    #[test]
    fn no_students_gives_zeros() {
        let s = summarise(&quiz(), &[]);
        assert_eq!(
            (s.count, s.average, s.median, s.pass_rate),
            (0, 0.0, 0.0, 0.0)
        );
        assert_eq!(s.histogram, [0; 5]);
        assert!(summary_text(&quiz(), &s, &[]).contains("Students: 0"));
    }

    #[test]
    fn fewer_than_three_questions_lists_them_all() {
        let q = Quiz {
            questions: quiz().questions[..2].to_vec(),
            ..quiz()
        };
        let e = RosterEntry {
            line: 2,
            email: "a@example.com".into(),
            attempt: Attempt::new(&q, "A".into(), vec![0, 0]),
        };
        let s = summarise(&q, &[e]);
        assert_eq!(s.hardest.len(), 2);
        assert_eq!(s.hardest[0].number, 2);
    }

    proptest! {
        /// Checks the figures against a second, independent computation: the median read off
        /// the histogram by counting, the average from a running total.
        #[test]
        fn figures_match_a_second_computation(rows in proptest::collection::vec(proptest::array::uniform4(0usize..4), 1..40)) {
            let q = quiz();
            let list: Vec<RosterEntry> = rows.iter().map(|a| RosterEntry {
                line: 0,
                email: String::new(),
                attempt: Attempt::new(&q, "x".into(), a.to_vec()),
            }).collect();
            let s = summarise(&q, &list);
            let points: Vec<usize> = rows.iter().map(|a| (0..4).filter(|&i| a[i] == i).count()).collect();
            let n = points.len();
            let mut running = 0.0;
            for p in &points { running += *p as f64; }
            prop_assert!((s.average - running / n as f64).abs() < 1e-9);
            // k-th smallest (0-based) by walking the counts per score.
            let kth = |k: usize| {
                let mut seen = 0;
                (0..=4).find(|&v| { seen += points.iter().filter(|&&p| p == v).count(); seen > k }).unwrap()
            };
            let median = if n % 2 == 1 { kth(n / 2) as f64 } else { (kth(n / 2 - 1) + kth(n / 2)) as f64 / 2.0 };
            prop_assert_eq!(s.median, median);
            prop_assert_eq!(s.passed, points.iter().filter(|&&p| p >= 2).count());
            prop_assert_eq!(s.histogram.iter().sum::<usize>(), n);
            let worst = (0..4).map(|i| rows.iter().filter(|a| a[i] == i).count()).min().unwrap();
            prop_assert_eq!(s.hardest[0].correct, worst);
        }
    }

    #[test]
    fn text_summary() {
        let e = five();
        let s = summarise(&quiz(), &e);
        let text = summary_text(&quiz(), &s, &e);
        assert!(text.starts_with("Class results: Mail <101>\n\nStudents: 5\nAverage:  1.8/4 (45%)\nMedian:   2/4\nPassed:   3 of 5 (60%, pass mark 50%)\n"), "{text}");
        assert!(text.contains("Hardest questions:\n  Q4      20% correct  Question 3?\n  Q3      40% correct  Question 2?\n  Q1      60% correct  Question 0?\n"), "{text}");
        // The busiest score (2, two students) gets the full 40 characters.
        assert!(text.contains(&format!("  2/4 | {} 2\n", "#".repeat(40))));
        assert!(text.contains("  3/4 | 0\n"));
        assert!(text.contains(&format!("  0/4 | {} 1\n", "#".repeat(20))));
        assert!(text.contains("  Bob <bob@example.com>: 2/4 (50%) passed\n"));
        assert_eq!(
            summary_subject(&quiz(), &s),
            "Class results: Mail <101> — 5 students, average 1.8/4 (45%), 3 passed"
        );
    }

    #[test]
    fn html_summary_draws_one_bar_per_score_and_escapes() {
        let mut e = five();
        e[1].attempt.name = "<script>x()</script>".into();
        e[1].email = "\"><img src=x>@example.com".into();
        let s = summarise(&quiz(), &e);
        let html = summary_html(&quiz(), &s, &e);
        for banned in ["<script", "<img", "class=", "<style", "http:"] {
            assert!(!html.contains(banned), "{banned}");
        }
        assert!(html.contains("&lt;script&gt;x()&lt;/script&gt;"));
        assert!(html.contains("Class results: Mail &lt;101&gt;"));
        // One histogram row per score value 0..=4; the busiest full width, empty ones grey.
        for score in 0..=4 {
            assert_eq!(
                html.matches(&format!("nowrap;\">{score}/4</td>")).count(),
                1,
                "{score}"
            );
        }
        assert!(html.contains(&format!("<td width=\"100%\" bgcolor=\"{GREEN}\"")));
        assert!(html.contains(&format!("<td width=\"50%\" bgcolor=\"{RED}\"")));
        for tag in ["table", "tr", "td"] {
            assert_eq!(
                html.matches(&format!("<{tag}")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn csv_has_every_student_and_their_answers() {
        let mut e = five();
        e.truncate(2);
        e[1].attempt.name = "=cmd|' /C calc'!A0".into();
        e[1].email = "bob, jr@example.com".into();
        let csv = summary_csv(&quiz(), &e);
        let expected = "name,email,score,total,percent,passed,q1 (a),q2 (b),q3 (c),q4 (d)\r\n\
             Ada,ada@example.com,4,4,100.0,true,a,b,c,d\r\n\
             '=cmd|' /C calc'!A0,\"bob, jr@example.com\",2,4,50.0,true,a,b,a,a\r\n";
        assert_eq!(csv, expected);
    }
}
