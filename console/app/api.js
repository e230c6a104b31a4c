// The node's HTTP API, as the console uses it. The token lives in sessionStorage: it is
// forgotten when the browser tab closes, and sent only to this node.

const KEY = "tasknode.token";

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

/** An error answer: the API's `{"error","message"}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `the node answered ${status}`);
    this.status = status;
    this.code = body?.error || "http_" + status;
  }
}

/** Called when the node refuses the token (401), e.g. after it was revoked. */
export let onUnauthorized = () => {};
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

function headers(extra = {}) {
  const h = { ...extra };
  const token = session.token();
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: keep the status
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, body);
}

/** One JSON request; resolves to the answer's body. */
export async function call(method, path, json, signal) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : res.json();
}

export const get = (path, signal) => call("GET", path, undefined, signal);
export const post = (path, json) => call("POST", path, json);
export const del = (path) => call("DELETE", path);

/** `?a=1&b=2` of the non-empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

/**
 * A task's states as Server-Sent Events until it is final. EventSource cannot send a
 * token, so the stream is read with fetch.
 */
export async function follow(id, onTask, signal) {
  const res = await fetch(`/v1/tasks/${encodeURIComponent(id)}/events`, { headers: headers(), signal });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      if (data) onTask(JSON.parse(data));
    }
  }
}

/**
 * POST a file (or any Blob) as a task's raw payload, streamed from disk, with progress
 * (`onProgress(sent, total)`): fetch cannot report upload progress, XMLHttpRequest can.
 * `options` (key, delay_ms, priority) go in the query.
 */
export function upload(kind, blob, options, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/tasks/${encodeURIComponent(kind)}${query(options)}`);
    for (const [k, v] of Object.entries(headers({ "Content-Type": "application/octet-stream" }))) {
      xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : blob.size);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else {
        if (xhr.status === 401) onUnauthorized();
        reject(new ApiError(xhr.status, body));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { error: "network", message: "the upload was cut off" }));
    xhr.send(blob);
  });
}

/** The first `n` bytes of a task's payload or result (`what`), and the whole size. */
export async function head(id, what, n) {
  const res = await fetch(`/v1/tasks/${encodeURIComponent(id)}/${what}`, {
    headers: headers({ Range: `bytes=0-${n - 1}` }),
  });
  if (res.status === 416) return { bytes: new Uint8Array(), size: 0 };
  if (!res.ok) throw await failure(res);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const range = res.headers.get("Content-Range");
  const size = range ? Number(range.split("/")[1]) : bytes.length;
  return { bytes, size };
}

/** The whole payload or result as a Blob (for a download). */
export async function blob(id, what) {
  const res = await fetch(`/v1/tasks/${encodeURIComponent(id)}/${what}`, { headers: headers() });
  if (!res.ok) throw await failure(res);
  return res.blob();
}
