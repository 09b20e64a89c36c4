/// Expands `$VAR` and `${VAR}` from the environment, as rain does for paths. Unset variables
/// expand to nothing (shell behaviour); a `$` not followed by a name is kept.
pub fn expand_env(s: &str) -> String {
    expand_with(s, |name| std::env::var(name).ok())
}

fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&lookup(name).unwrap_or_default());
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand_with;

    #[test]
    fn expands_both_forms() {
        let env = |n: &str| (n == "HOME").then(|| "/home/u".to_owned());
        assert_eq!(expand_with("$HOME/rain", env), "/home/u/rain");
        assert_eq!(expand_with("${HOME}x", env), "/home/ux");
        assert_eq!(expand_with("$NOPE/a", env), "/a");
        assert_eq!(expand_with("cost $ 5 and ${", env), "cost $ 5 and ${");
        assert_eq!(expand_with("plain", env), "plain");
    }
}
