//! A small HTTP client for the API tests: one node, one token, JSON answers.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tasknode_testkit::TestNode;

/// An HTTP client for one node, with a token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: Client,
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            token: token.to_string(),
            http: Client::new(),
        }
    }

    pub fn of(node: &TestNode, token: &str) -> Api {
        Api::new(node.http, token)
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = rb.send().await.expect("HTTP request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(Method::DELETE, path)).await
    }
}
