//! A pipeline's categories with their Korean names, in its order.

/// The pipeline's categories in its order (feed order) with their Korean
/// names: every page and list file writes a household's categories in this
/// order, so the same crises read the same and one Excel filter finds them.
#[derive(Debug, Clone, Default)]
pub(crate) struct CategoryNames(pub(super) Vec<(String, String)>);

impl CategoryNames {
    /// `of` in the pipeline's order: (names, Korean names). A category the
    /// pipeline no longer names (an old record) comes last, as it is.
    pub(crate) fn of<'a, S: AsRef<str>>(&'a self, of: &'a [S]) -> (Vec<&'a str>, Vec<&'a str>) {
        let mut en = Vec::new();
        let mut ko = Vec::new();
        for (c, c_ko) in &self.0 {
            if of.iter().any(|x| x.as_ref() == c) {
                en.push(c.as_str());
                ko.push(c_ko.as_str());
            }
        }
        for x in of.iter().map(AsRef::as_ref) {
            if !self.0.iter().any(|(c, _)| c == x) {
                en.push(x);
                ko.push(x);
            }
        }
        (en, ko)
    }
}
