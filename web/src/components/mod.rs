//! The page's Yew components. Props derive `PartialEq, Properties`; children
//! get data and `Callback`s, never state handles.

pub mod app;
pub mod comparison;
pub mod controls;
pub mod explorer;
pub mod live;
pub mod loads;
pub mod stage;
pub mod summary;

use std::ops::Deref;
use std::rc::Rc;

/// A shared, immutable value compared by identity: cheap props for big data
/// (a scenario with a million keys is never compared field by field).
#[derive(Debug)]
pub struct Shared<T: ?Sized>(pub Rc<T>);

impl<T: ?Sized> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Rc::clone(&self.0))
    }
}

impl<T: ?Sized> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: ?Sized> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
