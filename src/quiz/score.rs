//! Scoring one attempt: points, percentage and the pass decision.

use std::fmt;

use super::format::Quiz;

/// The result of one attempt.
///
/// `percent` is rounded half-up to one decimal (the value that appears in the JSON report and
/// the subject), while `passed` compares the exact fraction with the pass mark, so 59.96 % does
/// not pass a 60 % mark even though it displays as 60 %.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    pub score: usize,
    pub total: usize,
    pub percent: f64,
    pub passed: bool,
}

impl Score {
    /// Scores `answers` (choice indices, one per question in order) against `quiz`.
    pub fn of(quiz: &Quiz, answers: &[usize]) -> Score {
        let score = quiz
            .questions
            .iter()
            .zip(answers)
            .filter(|(q, &a)| q.answer == a)
            .count();
        Score::new(score, quiz.questions.len(), quiz.pass_percent)
    }

    /// Builds a score from counts; a zero total (impossible for a validated quiz) scores 0 %
    /// and fails, rather than dividing by zero.
    pub fn new(score: usize, total: usize, pass_percent: u8) -> Score {
        let tenths = tenths(score, total);
        Score {
            score,
            total,
            percent: tenths as f64 / 10.0,
            passed: total > 0 && score * 100 >= usize::from(pass_percent) * total,
        }
    }

    /// The percentage as shown to people: one decimal, with a trailing `.0` dropped
    /// (`80`, `66.7`, `12.5`); the number is the same as the JSON `percent`.
    pub fn percent_text(&self) -> String {
        percent_text(tenths(self.score, self.total))
    }
}

impl fmt::Display for Score {
    /// `8/10 (80%)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({}%)",
            self.score,
            self.total,
            self.percent_text()
        )
    }
}

/// `part / whole` in tenths of a percent, rounded half-up in integers so no float can round
/// the wrong way (2/3 → 667, 1/16 → 63).
pub(crate) fn tenths(part: usize, whole: usize) -> usize {
    if whole == 0 {
        return 0;
    }
    (part * 2000 + whole) / (2 * whole)
}

/// Tenths of a percent as text without a trailing `.0`.
pub(crate) fn percent_text(tenths: usize) -> String {
    if tenths.is_multiple_of(10) {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::Question;

    fn quiz(answers: &[usize], pass_percent: u8) -> Quiz {
        Quiz {
            title: "T".into(),
            pass_percent,
            questions: answers
                .iter()
                .map(|&answer| Question {
                    prompt: "p".into(),
                    choices: vec!["x".into(), "y".into(), "z".into()],
                    answer,
                    explain: None,
                })
                .collect(),
        }
    }

    #[test]
    fn all_right_and_all_wrong() {
        let q = quiz(&[0, 1, 2, 0], 50);
        let right = Score::of(&q, &[0, 1, 2, 0]);
        assert_eq!(
            (right.score, right.total, right.percent, right.passed),
            (4, 4, 100.0, true)
        );
        let wrong = Score::of(&q, &[1, 2, 0, 1]);
        assert_eq!(
            (wrong.score, wrong.total, wrong.percent, wrong.passed),
            (0, 4, 0.0, false)
        );
        assert_eq!(wrong.to_string(), "0/4 (0%)");
    }

    #[test]
    fn exactly_at_the_pass_mark_passes() {
        let q = quiz(&[0; 10], 60);
        assert!(Score::of(&q, &[0, 0, 0, 0, 0, 0, 1, 1, 1, 1]).passed);
        assert!(!Score::of(&q, &[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]).passed);
        // pass_percent 0 passes everyone, 100 only a perfect score.
        assert!(Score::new(0, 10, 0).passed);
        assert!(!Score::new(9, 10, 100).passed);
        assert!(Score::new(10, 10, 100).passed);
    }

    #[test]
    fn pass_uses_the_exact_fraction_not_the_rounded_one() {
        // 1499/2500 = 59.96 %: shown as 60 %, but below a 60 % mark.
        let s = Score::new(1499, 2500, 60);
        assert_eq!(s.percent, 60.0);
        assert_eq!(s.percent_text(), "60");
        assert!(!s.passed);
    }

    #[test]
    fn percent_rounds_half_up_to_one_decimal() {
        // Expected values worked out by hand: 2/3 = 66.666..., 1/3 = 33.333..., 1/8 = 12.5,
        // 1/16 = 6.25 (half-up → 6.3), 5/6 = 83.333...
        for (s, t, percent, text) in [
            (2, 3, 66.7, "66.7"),
            (1, 3, 33.3, "33.3"),
            (1, 8, 12.5, "12.5"),
            (1, 16, 6.3, "6.3"),
            (5, 6, 83.3, "83.3"),
            (8, 10, 80.0, "80"),
            (7, 7, 100.0, "100"),
        ] {
            let score = Score::new(s, t, 50);
            assert_eq!(score.percent, percent, "{s}/{t}");
            assert_eq!(score.percent_text(), text, "{s}/{t}");
        }
        assert_eq!(Score::new(8, 10, 50).to_string(), "8/10 (80%)");
    }

    #[test]
    fn zero_total_does_not_divide_by_zero() {
        let s = Score::new(0, 0, 0);
        assert_eq!((s.percent, s.passed), (0.0, false));
    }

    #[test]
    fn serialises_like_the_json_report() {
        let json = serde_json::to_value(Score::new(8, 10, 60)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"score": 8, "total": 10, "percent": 80.0, "passed": true})
        );
    }
}
