//! Comparing the table the kernel holds with a rendered one: `nft list` prints objects in
//! creation order, wraps element lists and shows counter values, none of which matter.

/// Lines of a table listing with counter values removed, element lists sorted, and the
/// top-level blocks (sets, maps, chains) sorted by name; rule order is kept.
pub fn normalize_listing(listing: &str) -> Vec<String> {
    let flat = listing.replace(",\n", ", ");
    let mut header = Vec::new();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut depth = 0usize;
    for raw in flat.lines() {
        let mut line = raw.trim().to_string();
        if line.is_empty() {
            continue;
        }
        if let Some(at) = line.find("counter packets") {
            let after = line[at..].splitn(6, ' ').nth(5).unwrap_or("").to_string();
            line = format!("{}counter {after}", &line[..at]).trim().to_string();
        }
        if let Some(body) = line.strip_prefix("elements = { ").and_then(|l| l.strip_suffix(" }")) {
            let mut elements: Vec<&str> = body.split(", ").map(str::trim).collect();
            elements.sort_unstable();
            line = format!("elements = {{ {} }}", elements.join(", "));
        }
        let opens = line.ends_with('{');
        let closes = line == "}";
        match depth {
            0 => header.push(line.clone()),
            1 if opens => blocks.push(vec![line.clone()]),
            1 => header.push(line.clone()),
            _ => blocks.last_mut().expect("inside a block").push(line.clone()),
        }
        if opens {
            depth += 1;
        } else if closes {
            depth = depth.saturating_sub(1);
        }
    }
    blocks.sort();
    let closing = header.pop();
    header.into_iter().chain(blocks.into_iter().flatten()).chain(closing).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_wrapping_and_counters_do_not_matter() {
        let kernel = "table inet t {\n\tchain b {\n\t\tcounter packets 3 bytes 180 drop comment \"x\"\n\t}\n\n\tset a {\n\t\telements = { 2,\n\t\t\t     1 }\n\t}\n}\n";
        let rendered = "table inet t {\n\tset a {\n\t\telements = { 1, 2 }\n\t}\n\n\tchain b {\n\t\tcounter drop comment \"x\"\n\t}\n}\n";
        assert_eq!(normalize_listing(kernel), normalize_listing(rendered));
        assert_ne!(normalize_listing(kernel), normalize_listing(&rendered.replace("drop", "accept")));
    }
}
