//! What QGIS needs to open the outputs styled: a `.qml` style beside each layer and a project.

pub(crate) mod project;
pub(crate) mod style;
