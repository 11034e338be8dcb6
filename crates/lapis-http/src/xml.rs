//! Small XML helpers: escaping for the documents Lapis writes, and a reader over
//! `roxmltree` for the small documents clients send.

use roxmltree::{Document, Node};

pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// Escapes text for element content or attribute values.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Appends `<name>text</name>` with `text` escaped.
pub fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Parses a request body, requiring its root element to be `root`.
pub fn parse<'a>(body: &'a str, root: &str) -> Result<Document<'a>, String> {
    let doc = Document::parse(body).map_err(|e| e.to_string())?;
    if doc.root_element().tag_name().name() != root {
        return Err(format!("expected root element <{root}>"));
    }
    Ok(doc)
}

/// The first child element of `node` named `name`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

/// All child elements of `node` named `name`.
pub fn children<'a, 'i: 'a>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The full text of a child element (all text nodes joined, whitespace kept).
pub fn child_text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(|c| c.children().filter(|t| t.is_text()).filter_map(|t| t.text()).collect())
}

/// A child's text as a boolean (`true`/`false`, case-insensitive).
pub fn child_bool(node: Node<'_, '_>, name: &str) -> Result<Option<bool>, String> {
    match child_text(node, name) {
        None => Ok(None),
        Some(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(format!("<{name}> must be true or false, not {other:?}")),
        },
    }
}
