//! What a table scan can learn from the query's filters to read less: a time range, an exact
//! string, a flag. Every filter used here is also applied again above the scan (the tables
//! declare them inexact), so reading more than needed is never wrong, only slower.

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

/// `Inexact` for each filter a scan uses (it is applied again above the scan), else
/// `Unsupported`.
pub(crate) fn support(
    filters: &[&Expr],
    used: impl Fn(&Expr) -> bool,
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown as PushDown;
    filters
        .iter()
        .map(|f| if used(f) { PushDown::Inexact } else { PushDown::Unsupported })
        .collect()
}

/// Inclusive bounds, in Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub from: Option<u64>,
    pub to: Option<u64>,
}

impl TimeRange {
    pub(crate) fn overlaps(&self, min: u64, max: u64) -> bool {
        self.from.is_none_or(|from| max >= from) && self.to.is_none_or(|to| min <= to)
    }

    pub(crate) fn contains(&self, at: u64) -> bool {
        self.overlaps(at, at)
    }
}

/// The range of `column` that every filter (ANDed) allows, from comparisons with timestamp
/// literals.
pub(crate) fn time_range(filters: &[Expr], column: &str) -> TimeRange {
    let mut range = TimeRange { from: None, to: None };
    for filter in filters {
        for conjunct in conjuncts(filter) {
            let Some((op, value)) = comparison(conjunct, column) else { continue };
            let Some(nanos) = timestamp_nanos(value) else { continue };
            match op {
                Operator::Gt | Operator::GtEq => {
                    let from = if op == Operator::Gt { nanos.saturating_add(1) } else { nanos };
                    range.from = Some(range.from.map_or(from, |f| f.max(from)));
                }
                Operator::Lt | Operator::LtEq => {
                    let to = if op == Operator::Lt { nanos.saturating_sub(1) } else { nanos };
                    range.to = Some(range.to.map_or(to, |t| t.min(to)));
                }
                Operator::Eq => {
                    range.from = Some(range.from.map_or(nanos, |f| f.max(nanos)));
                    range.to = Some(range.to.map_or(nanos, |t| t.min(nanos)));
                }
                _ => {}
            }
        }
    }
    range
}

/// True when `filter` is one [`time_range`] can use.
pub(crate) fn is_time_bound(filter: &Expr, column: &str) -> bool {
    conjuncts(filter).into_iter().any(|c| {
        comparison(c, column).is_some_and(|(op, value)| {
            matches!(
                op,
                Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq | Operator::Eq
            ) && timestamp_nanos(value).is_some()
        })
    })
}

/// The string `column` must equal, from a `column = 'literal'` filter.
pub(crate) fn string_eq(filters: &[Expr], column: &str) -> Option<String> {
    filters.iter().flat_map(conjuncts).find_map(|c| match comparison(c, column)? {
        (Operator::Eq, value) => string_literal(value),
        _ => None,
    })
}

/// The value `column` must have, from `column`, `NOT column`, `column = true/false`.
pub(crate) fn bool_eq(filters: &[Expr], column: &str) -> Option<bool> {
    filters.iter().flat_map(conjuncts).find_map(|c| match c {
        Expr::Column(c) if c.name == column => Some(true),
        Expr::Not(inner) if matches!(&**inner, Expr::Column(c) if c.name == column) => Some(false),
        _ => match comparison(c, column)? {
            (Operator::Eq, ScalarValue::Boolean(Some(b))) => Some(*b),
            _ => None,
        },
    })
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        other => vec![other],
    }
}

/// `column OP literal`, or `literal OP column` turned around.
fn comparison<'a>(expr: &'a Expr, column: &str) -> Option<(Operator, &'a ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return None };
    match (&**left, &**right) {
        (Expr::Column(c), Expr::Literal(value, _)) if c.name == column => Some((*op, value)),
        (Expr::Literal(value, _), Expr::Column(c)) if c.name == column => Some((op.swap()?, value)),
        _ => None,
    }
}

fn timestamp_nanos(value: &ScalarValue) -> Option<u64> {
    let nanos = match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => i128::from(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => i128::from(*v) * 1_000,
        ScalarValue::TimestampMillisecond(Some(v), _) => i128::from(*v) * 1_000_000,
        ScalarValue::TimestampSecond(Some(v), _) => i128::from(*v) * 1_000_000_000,
        _ => return None,
    };
    Some(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

fn string_literal(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}
