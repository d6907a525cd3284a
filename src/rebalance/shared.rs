//! [`Shared`]: a value shared by reference between snapshots, copied only when written.
//!
//! A [`super::ClusterSnapshot`] holds its resources as `Shared<ResourceSnapshot>`: cloning a
//! snapshot to change one thing (an instance down, one resource's current states) copies no
//! resource, and [`super::Engine`] recognises a resource it has already decided by identity
//! (two handles on one allocation are equal without walking the maps) before it compares
//! contents.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A shared value: reads go through [`Deref`]; a write through [`DerefMut`] copies the
/// value first if another handle shares it (copy on write), so no holder ever sees another's
/// change. Equality is by identity first, then by content.
#[derive(Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// A new, unshared value.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }

    /// Whether both handles share one value (then they are equal, whatever it holds).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Shared::ptr_eq(self, other) || *self.0 == *other.0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_a_shared_value_and_leaves_the_other_handle_alone() {
        let a = Shared::new(vec![1, 2]);
        let mut b = a.clone();
        assert!(Shared::ptr_eq(&a, &b));
        b.push(3);
        assert!(!Shared::ptr_eq(&a, &b));
        assert_eq!(*a, [1, 2]);
        assert_eq!(*b, [1, 2, 3]);
        // Equal contents are equal without sharing.
        assert_eq!(Shared::new(vec![1, 2]), a);
        assert_ne!(a, b);
    }
}
