/// The three outcomes of decoding bytes that may still be arriving (DESIGN.md §2, rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decode<T, E> {
    /// A whole value was decoded from the first `used` bytes of the input.
    Complete {
        /// The decoded value.
        value: T,
        /// How many input bytes it took.
        used: usize,
    },
    /// The input is a valid prefix; more bytes are needed.
    Incomplete,
    /// The input can never become valid.
    Invalid(E),
}

impl<T, E> Decode<T, E> {
    /// Maps the decoded value, keeping the other outcomes.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decode<U, E> {
        match self {
            Decode::Complete { value, used } => Decode::Complete {
                value: f(value),
                used,
            },
            Decode::Incomplete => Decode::Incomplete,
            Decode::Invalid(e) => Decode::Invalid(e),
        }
    }
}
