//! The `[[list]]` rules of SPEC §2: unique addresses inside the team's domains, members
//! that parse, `archive_of` entries that name team addresses, lists or team domains, and
//! nested lists without a cycle.

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawList, SpStr};
use super::{List, Team};
use crate::address::{Address, Pattern};

/// Checks every list; returns those whose address parsed.
pub(super) fn check_lists(c: &mut Checker, raw: &[Spanned<RawList>], team: &Team) -> Vec<List> {
    let in_team = |a: &Address| team.domains.iter().any(|d| d == a.domain());
    let mut lists: Vec<List> = Vec::new();
    let mut seen: HashMap<Address, usize> = HashMap::new();
    let mut archive_raw = Vec::new();
    for item in raw {
        let r = item.get_ref();
        let key = format!("list {:?}", r.address.get_ref());
        let Some(address) = c.address(&r.address, &key, "address") else {
            continue;
        };
        if !in_team(&address) {
            c.error_at(&r.address, &key, "a list address must be in team.domains");
        }
        if seen
            .insert(address.clone(), c.line_of(r.address.span().start))
            .is_some()
        {
            c.error_at(&r.address, &key, "is defined twice");
        }
        if address.local().ends_with("-bounces") {
            c.error_at(
                &r.address,
                &key,
                "must not end in -bounces (reserved for bounce addresses)",
            );
        }
        if r.members.is_empty() {
            c.error_at(item, &key, "has no members");
        }
        let members = r
            .members
            .iter()
            .filter_map(|m| c.address(m, &key, "member"))
            .collect();
        if let Some(of) = &r.archive_of {
            if of.is_empty() {
                c.error_at(
                    item,
                    &key,
                    "archive_of is empty; remove it or name what to archive",
                );
            }
            archive_raw.push((lists.len(), key.clone(), of));
        }
        let assign_owner = super::awareness::check_assign(c, &r.assign, &key);
        lists.push(List {
            address,
            members,
            archive_of: Vec::new(),
            assign_owner,
        });
    }
    check_archive_of(c, team, &mut lists, archive_raw);
    check_cycles(c, raw, &lists);
    lists
}

/// The `archive_of` patterns of the archive lists (`(index, key, patterns)`), checked
/// once every list is known: an exact pattern may name another list.
fn check_archive_of(
    c: &mut Checker,
    team: &Team,
    lists: &mut [List],
    archive_raw: Vec<(usize, String, &Vec<SpStr>)>,
) {
    let in_team = |a: &Address| team.domains.iter().any(|d| d == a.domain());
    let names: HashSet<Address> = lists.iter().map(|l| l.address.clone()).collect();
    for (i, key, of) in archive_raw {
        for s in of.iter() {
            match Pattern::parse(s.get_ref()) {
                Ok(Pattern::Domain(d)) if !team.domains.contains(&d) => c.error_at(
                    s,
                    &key,
                    format!("archive_of \"*@{d}\" is not a team domain"),
                ),
                Ok(Pattern::Exact(a)) if !in_team(&a) && !names.contains(&a) => c.error_at(
                    s,
                    &key,
                    format!("archive_of {a} is not a team address (archives cover team members)"),
                ),
                Ok(p) => lists[i].archive_of.push(p),
                Err(e) => c.error_at(
                    s,
                    &key,
                    format!(
                        "archive_of {:?} is not an address, list or *@domain ({e})",
                        s.get_ref()
                    ),
                ),
            }
        }
    }
}

/// Nested lists must form no cycle; each cycle is reported once, at its first list.
fn check_cycles(c: &mut Checker, raw: &[Spanned<RawList>], lists: &[List]) {
    let index: HashMap<&Address, usize> = lists
        .iter()
        .enumerate()
        .map(|(i, l)| (&l.address, i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; lists.len()];
    fn visit(
        i: usize,
        lists: &[List],
        index: &HashMap<&Address, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for m in &lists[i].members {
            if let Some(&j) = index.get(m) {
                if state[j] == 1 {
                    let start = path.iter().position(|&p| p == j).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                if state[j] == 0 {
                    if let Some(cycle) = visit(j, lists, index, state, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    for i in 0..lists.len() {
        if state[i] == 0 {
            let mut path = Vec::new();
            if let Some(cycle) = visit(i, lists, &index, &mut state, &mut path) {
                let first = cycle[0];
                let names: Vec<String> = cycle
                    .iter()
                    .chain([&first])
                    .map(|&k| lists[k].address.to_string())
                    .collect();
                let key = format!("list {:?}", lists[first].address.to_string());
                c.error_at(
                    &raw[first].get_ref().address,
                    key,
                    format!("nested lists form a cycle: {}", names.join(" → ")),
                );
                for k in cycle {
                    state[k] = 2;
                }
            }
        }
    }
}
