//! Lists of answer letters, as given by `--answers a,c,b` and by a roster's `a;c;b` column.

use super::format::{letter, single_letter, Quiz};

/// Why a list of answers does not fit a quiz; positions are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerListError {
    #[error("{given} answers given, but the quiz has {expected} questions")]
    Count { given: usize, expected: usize },
    #[error("answer {position} is empty")]
    Empty { position: usize },
    #[error("answer {position} is {given:?}; question {position} takes a letter from a to {last}")]
    Letter {
        position: usize,
        given: String,
        last: char,
    },
}

/// Turns answer tokens into choice indices, checking the count and that every letter exists in
/// its question. Tokens are trimmed and case-insensitive. The count is checked first so a
/// missing answer is reported as such rather than as the first letter that no longer lines up.
pub fn parse_answer_list<'a, I>(tokens: I, quiz: &Quiz) -> Result<Vec<usize>, AnswerListError>
where
    I: IntoIterator<Item = &'a str>,
{
    let tokens: Vec<&str> = tokens.into_iter().map(str::trim).collect();
    if tokens.len() != quiz.questions.len() {
        return Err(AnswerListError::Count {
            given: tokens.len(),
            expected: quiz.questions.len(),
        });
    }
    tokens
        .iter()
        .zip(&quiz.questions)
        .enumerate()
        .map(|(i, (token, question))| {
            if token.is_empty() {
                return Err(AnswerListError::Empty { position: i + 1 });
            }
            single_letter(token)
                .filter(|&c| c < question.choices.len())
                .ok_or_else(|| AnswerListError::Letter {
                    position: i + 1,
                    given: (*token).to_owned(),
                    last: letter(question.choices.len() - 1),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::Question;

    fn quiz(choice_counts: &[usize]) -> Quiz {
        Quiz {
            title: "T".into(),
            pass_percent: 50,
            questions: choice_counts
                .iter()
                .map(|&n| Question {
                    prompt: "p".into(),
                    choices: (0..n).map(|i| format!("c{i}")).collect(),
                    answer: 0,
                    explain: None,
                })
                .collect(),
        }
    }

    #[test]
    fn letters_become_indices() {
        let q = quiz(&[4, 2, 3]);
        assert_eq!(parse_answer_list(["a", " B ", "c"], &q), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn count_is_checked_first() {
        let q = quiz(&[4, 2, 3]);
        assert_eq!(
            parse_answer_list(["z", "b"], &q),
            Err(AnswerListError::Count {
                given: 2,
                expected: 3
            })
        );
        assert_eq!(
            parse_answer_list(["a", "b", "c", "d"], &q)
                .unwrap_err()
                .to_string(),
            "4 answers given, but the quiz has 3 questions"
        );
    }

    #[test]
    fn bad_letters_name_their_position() {
        let q = quiz(&[4, 2, 3]);
        let e = parse_answer_list(["a", "c", "c"], &q).unwrap_err();
        assert_eq!(
            e,
            AnswerListError::Letter {
                position: 2,
                given: "c".into(),
                last: 'b'
            }
        );
        assert_eq!(
            e.to_string(),
            "answer 2 is \"c\"; question 2 takes a letter from a to b"
        );
        assert!(matches!(
            parse_answer_list(["a", "b", "7"], &q),
            Err(AnswerListError::Letter { position: 3, .. })
        ));
        assert!(matches!(
            parse_answer_list(["a", "bb", "c"], &q),
            Err(AnswerListError::Letter { position: 2, .. })
        ));
        assert_eq!(
            parse_answer_list(["a", " ", "c"], &q),
            Err(AnswerListError::Empty { position: 2 })
        );
    }
}
