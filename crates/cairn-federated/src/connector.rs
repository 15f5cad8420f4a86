//! Connectors to source systems: PostgreSQL (`tokio-postgres`), MySQL/MariaDB (`mysql_async`) and
//! HTTP (`reqwest`). Each fetches one record's values by its id and writes one field back. Timeouts
//! are applied by the caller ([`crate::service`]); a connection that timed out or failed is dropped
//! and re-opened on the next call.

use crate::config::{ConnectorConfig, HttpMethod, HttpWrite, JsonPointer};
use crate::AttributeValues;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::Mutex;

/// A connector's failure, as text for the caller's error.
pub type ConnectorResult<T> = Result<T, String>;

/// A live connector.
pub enum Connector {
    Postgres(PostgresConnector),
    Mysql(MysqlConnector),
    Http(HttpConnector),
}

impl Connector {
    pub fn new(config: &ConnectorConfig) -> Result<Connector, String> {
        Ok(match config {
            ConnectorConfig::Postgres { url, query, write } => {
                Connector::Postgres(PostgresConnector {
                    url: url.clone(),
                    query: query.clone(),
                    write: write.clone(),
                    client: Mutex::new(None),
                })
            }
            ConnectorConfig::Mysql { url, query, write } => Connector::Mysql(MysqlConnector {
                pool: mysql_async::Pool::new(
                    mysql_async::Opts::from_url(url)
                        .map_err(|error| format!("invalid MySQL URL `{url}`: {error}"))?,
                ),
                query: query.clone(),
                write: write.clone(),
            }),
            ConnectorConfig::Http {
                url,
                fields,
                headers,
                write,
            } => Connector::Http(HttpConnector {
                client: {
                    // reqwest is built with rustls and no default crypto provider in this workspace.
                    let _ = rustls::crypto::ring::default_provider().install_default();
                    reqwest::Client::new()
                },
                url: url.clone(),
                fields: fields.clone(),
                headers: headers.clone(),
                write: write.clone(),
            }),
        })
    }

    /// The values of one record (`None` if the source has no such record).
    pub async fn fetch(&self, source_id: &str) -> ConnectorResult<Option<AttributeValues>> {
        match self {
            Connector::Postgres(connector) => connector.fetch(source_id).await,
            Connector::Mysql(connector) => connector.fetch(source_id).await,
            Connector::Http(connector) => connector.fetch(source_id).await,
        }
    }

    /// Writes one field; returns the number of rows (or 1 for HTTP) changed.
    pub async fn write(&self, source_id: &str, field: &str, value: &Value) -> ConnectorResult<u64> {
        match self {
            Connector::Postgres(connector) => connector.write(source_id, field, value).await,
            Connector::Mysql(connector) => connector.write(source_id, field, value).await,
            Connector::Http(connector) => connector.write(source_id, field, value).await,
        }
    }

    /// Drops a connection left in an unknown state (after a timeout).
    pub async fn reset(&self) {
        if let Connector::Postgres(connector) = self {
            if let Some(client) = connector.client.lock().await.take() {
                let token = client.cancel_token();
                tokio::spawn(async move {
                    let _ = token.cancel_query(tokio_postgres::NoTls).await;
                });
            }
        }
    }

    /// Whether the connector can write back.
    pub fn can_write(&self) -> bool {
        match self {
            Connector::Postgres(connector) => connector.write.is_some(),
            Connector::Mysql(connector) => connector.write.is_some(),
            Connector::Http(connector) => connector.write.is_some(),
        }
    }
}

/// The text form of a value for an SQL parameter (`null` stays a null).
fn value_as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Field names in `{field}` must be plain identifiers (they are spliced into the statement).
fn check_identifier(field: &str) -> ConnectorResult<()> {
    if !field.is_empty()
        && field
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_')
    {
        Ok(())
    } else {
        Err(format!("`{field}` is not a plain column name"))
    }
}

pub struct PostgresConnector {
    url: String,
    query: String,
    write: Option<String>,
    client: Mutex<Option<tokio_postgres::Client>>,
}

impl PostgresConnector {
    async fn client(
        &self,
    ) -> ConnectorResult<tokio::sync::MutexGuard<'_, Option<tokio_postgres::Client>>> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|client| client.is_closed()) {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *guard = Some(client);
        }
        Ok(guard)
    }

    async fn fetch(&self, source_id: &str) -> ConnectorResult<Option<AttributeValues>> {
        use tokio_postgres::types::Type;
        let guard = self.client().await?;
        let client = guard.as_ref().ok_or("no PostgreSQL connection")?;
        let rows = client
            .query_typed(&self.query, &[(&source_id, Type::TEXT)])
            .await
            .map_err(|error| format!("PostgreSQL query failed: {error}"))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut values = AttributeValues::new();
        for (index, column) in row.columns().iter().enumerate() {
            values.insert(
                column.name().to_string(),
                postgres_value(row, index, column.type_())?,
            );
        }
        Ok(Some(values))
    }

    async fn write(&self, source_id: &str, field: &str, value: &Value) -> ConnectorResult<u64> {
        use tokio_postgres::types::Type;
        check_identifier(field)?;
        let statement = self
            .write
            .as_ref()
            .ok_or("no write statement")?
            .replace("{field}", field);
        let text = value_as_text(value);
        let guard = self.client().await?;
        let client = guard.as_ref().ok_or("no PostgreSQL connection")?;
        let rows = client
            .execute_typed(&statement, &[(&text, Type::TEXT), (&source_id, Type::TEXT)])
            .await
            .map_err(|error| format!("PostgreSQL write failed: {error}"))?;
        Ok(rows)
    }
}

fn postgres_value(
    row: &tokio_postgres::Row,
    index: usize,
    column_type: &tokio_postgres::types::Type,
) -> ConnectorResult<Value> {
    use tokio_postgres::types::Type;
    let fail = |error: tokio_postgres::Error| format!("cannot read column {index}: {error}");
    Ok(match *column_type {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map_err(fail)?
            .map(Value::from),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
            .try_get::<_, Option<String>>(index)
            .map_err(fail)?
            .map(Value::from),
        ref other => {
            return Err(format!(
            "column {index} has type {other}, which is not supported: cast it to text in the query"
        ))
        }
    }
    .unwrap_or(Value::Null))
}

pub struct MysqlConnector {
    pool: mysql_async::Pool,
    query: String,
    write: Option<String>,
}

impl MysqlConnector {
    async fn fetch(&self, source_id: &str) -> ConnectorResult<Option<AttributeValues>> {
        use mysql_async::prelude::Queryable;
        let mut connection = self
            .pool
            .get_conn()
            .await
            .map_err(|error| format!("cannot connect to MySQL: {error}"))?;
        let row: Option<mysql_async::Row> = connection
            .exec_first(&self.query, (source_id,))
            .await
            .map_err(|error| format!("MySQL query failed: {error}"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut values = AttributeValues::new();
        for (index, column) in row.columns_ref().iter().enumerate() {
            let value = row.as_ref(index).map_or(Value::Null, mysql_value);
            values.insert(column.name_str().to_string(), value);
        }
        Ok(Some(values))
    }

    async fn write(&self, source_id: &str, field: &str, value: &Value) -> ConnectorResult<u64> {
        use mysql_async::prelude::Queryable;
        check_identifier(field)?;
        let statement = self
            .write
            .as_ref()
            .ok_or("no write statement")?
            .replace("{field}", field);
        let mut connection = self
            .pool
            .get_conn()
            .await
            .map_err(|error| format!("cannot connect to MySQL: {error}"))?;
        connection
            .exec_drop(statement, (value_as_text(value), source_id))
            .await
            .map_err(|error| format!("MySQL write failed: {error}"))?;
        Ok(connection.affected_rows())
    }
}

fn mysql_value(value: &mysql_async::Value) -> Value {
    use mysql_async::Value as Sql;
    match value {
        Sql::NULL => Value::Null,
        Sql::Bytes(bytes) => Value::from(String::from_utf8_lossy(bytes).into_owned()),
        Sql::Int(number) => Value::from(*number),
        Sql::UInt(number) => Value::from(*number),
        Sql::Float(number) => Value::from(*number),
        Sql::Double(number) => Value::from(*number),
        other => Value::from(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

pub struct HttpConnector {
    client: reqwest::Client,
    url: String,
    fields: BTreeMap<String, JsonPointer>,
    headers: BTreeMap<String, String>,
    write: Option<HttpWrite>,
}

fn encode_id(source_id: &str) -> String {
    let mut encoded = String::with_capacity(source_id.len());
    for byte in source_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

impl HttpConnector {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }

    async fn fetch(&self, source_id: &str) -> ConnectorResult<Option<AttributeValues>> {
        let url = self.url.replace("{id}", &encode_id(source_id));
        let response = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .map_err(|error| format!("HTTP request failed: {error}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|error| format!("the response is not JSON: {error}"))?;
        Ok(Some(
            self.fields
                .iter()
                .map(|(field, pointer)| {
                    (
                        field.clone(),
                        body.pointer(&pointer.0).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ))
    }

    async fn write(&self, source_id: &str, field: &str, value: &Value) -> ConnectorResult<u64> {
        let write = self.write.as_ref().ok_or("no write-back")?;
        let pointer = self
            .fields
            .get(field)
            .ok_or_else(|| format!("`{field}` is not a field of this attribute set"))?;
        let mut body = value.clone();
        for token in pointer.tokens().into_iter().rev() {
            let mut object = serde_json::Map::new();
            object.insert(token, body);
            body = Value::Object(object);
        }
        let method = match write.method {
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Post => reqwest::Method::POST,
        };
        let url = write.url.replace("{id}", &encode_id(source_id));
        let response = self
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .map_err(|error| format!("HTTP request failed: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_encoded_and_fields_must_be_identifiers() {
        assert_eq!(encode_id("a b/c?"), "a%20b%2Fc%3F");
        assert!(check_identifier("points").is_ok());
        assert!(check_identifier("points; drop table x").is_err());
        assert_eq!(value_as_text(&Value::from(3)), Some("3".to_string()));
        assert_eq!(value_as_text(&Value::Null), None);
    }
}
