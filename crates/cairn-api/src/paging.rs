//! What the list routes share: a query string that does not parse is 400 `invalid_query`, and so is
//! a page size outside `1..=MAX_LIMIT`.

use axum::extract::{rejection::QueryRejection, Query};
use cairn_model::ErrorCode;

use crate::error::ApiError;

/// The largest page any list route returns.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The parsed query string, or the `invalid_query` error that says what is wrong with it.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|error| ApiError::new(ErrorCode::InvalidQuery, error.body_text()))
}

/// The page size asked for (`default` when none was), refused outside `1..=MAX_LIMIT`.
pub(crate) fn limit(requested: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let limit = requested.unwrap_or(default);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_outside_the_range_are_refused() {
        assert_eq!(limit(None, 50).ok(), Some(50));
        assert_eq!(limit(Some(MAX_LIMIT), 50).ok(), Some(MAX_LIMIT));
        for bad in [0, MAX_LIMIT + 1] {
            let error = limit(Some(bad), 50).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidQuery);
        }
    }
}
