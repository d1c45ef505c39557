// The service's HTTP API, as the viewer uses it. Same origin only; the bearer token lives in
// sessionStorage (this tab, until it closes), never in a URL.

const TOKEN_KEY = "insightray.token";

/** An API failure with the service's one-line message. */
export class ApiError extends Error {
  constructor(status, message, type = "") {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** The one-line message of an error body: `{"error": {...}}` or FastAPI's `{"detail": ...}`. */
function errorMessage(status, body) {
  if (body && typeof body === "object") {
    if (body.error && body.error.message) return [body.error.message, body.error.type || ""];
    if (typeof body.detail === "string") return [body.detail, ""];
    if (Array.isArray(body.detail) && body.detail.length) {
      const first = body.detail[0];
      const where = Array.isArray(first.loc) ? first.loc.filter((p) => p !== "body").join(".") : "";
      return [`${where ? where + ": " : ""}${first.msg || "invalid request"}`, "validation"];
    }
  }
  const plain = {
    401: "Your session has ended: sign in again.",
    403: "Your role does not allow this action.",
    404: "Not found: it may have been deleted.",
    413: "The file is too large for this service.",
    415: "Unsupported file type: upload DICOM, PNG or JPEG.",
    429: "Too many requests: wait a moment and try again.",
    503: "The service is not ready: try again shortly.",
  };
  return [plain[status] || `The service answered ${status}.`, ""];
}

async function parseBody(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return null;
}

export class Api {
  /** @param {() => void} onUnauthorized called when a request answers 401 */
  constructor(onUnauthorized) {
    this.onUnauthorized = onUnauthorized;
    this.token = sessionStorage.getItem(TOKEN_KEY);
  }

  get signedIn() {
    return Boolean(this.token);
  }

  async signIn(username, password) {
    const form = new URLSearchParams({ username, password });
    const response = await this.#fetch("/v1/auth/token", { method: "POST", body: form }, false);
    const body = await parseBody(response);
    if (!response.ok) {
      const [message, type] = response.status === 401
        ? ["Wrong username or password.", "auth"]
        : errorMessage(response.status, body);
      throw new ApiError(response.status, message, type);
    }
    this.token = body.access_token;
    sessionStorage.setItem(TOKEN_KEY, this.token);
    return body;
  }

  signOut() {
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  me() { return this.json("GET", "/v1/auth/me"); }
  studies() { return this.json("GET", "/v1/studies"); }
  study(id) { return this.json("GET", `/v1/studies/${encodeURIComponent(id)}`); }
  deleteStudy(id) { return this.json("DELETE", `/v1/studies/${encodeURIComponent(id)}`); }
  results(studyId) { return this.json("GET", `/v1/studies/${encodeURIComponent(studyId)}/results`); }
  analyse(studyId, task) {
    return this.json("POST", `/v1/studies/${encodeURIComponent(studyId)}/analyze`, { task });
  }
  measurements(studyId) { return this.json("GET", `/v1/studies/${encodeURIComponent(studyId)}/measurements`); }
  saveMeasurement(studyId, body) {
    return this.json("POST", `/v1/studies/${encodeURIComponent(studyId)}/measurements`, body);
  }
  deleteMeasurement(studyId, id) {
    return this.json("DELETE", `/v1/studies/${encodeURIComponent(studyId)}/measurements/${encodeURIComponent(id)}`);
  }
  /** The signed-in reader's verdicts on a result's findings. */
  feedback(resultId) { return this.json("GET", `/v1/results/${encodeURIComponent(resultId)}/feedback`); }
  /** Accept, reject or correct (with `label`) finding `index` of a result (0: a fracture label). */
  judge(resultId, index, verdict, label = undefined) {
    const body = label === undefined ? { verdict } : { verdict, label };
    return this.json("PUT", `/v1/results/${encodeURIComponent(resultId)}/feedback/${index}`, body);
  }
  priors(studyId) { return this.json("GET", `/v1/studies/${encodeURIComponent(studyId)}/priors`); }
  tags(studyId) { return this.json("GET", `/v1/studies/${encodeURIComponent(studyId)}/tags`); }
  /** `explainMethod`: "" for none, else a method of `POST /v1/text/analyze`'s explain_method. */
  analyseText(text, explainMethod = "") {
    const body = explainMethod ? { text, explain: true, explain_method: explainMethod } : { text };
    return this.json("POST", "/v1/text/analyze", body);
  }
  ask(question, conversationId) {
    const body = { question };
    if (conversationId) body.conversation_id = conversationId;
    return this.json("POST", "/v1/assistant/ask", body);
  }

  /** JSON request; resolves to the parsed body (null for 204). */
  async json(method, path, payload) {
    const init = { method, headers: {} };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const response = await this.#fetch(path, init);
    const body = await parseBody(response);
    if (!response.ok) this.#fail(response.status, body);
    return body;
  }

  /**
   * The uint16 pixels of a study with the headers that give their meaning: a downsampled level
   * of a large image first (the service's default), or a full-detail `region` [x, y, w, h].
   */
  async pixels(studyId, region = null, frame = null) {
    const params = new URLSearchParams();
    if (region) params.set("region", region.map((v) => Math.round(v)).join(","));
    if (frame !== null) params.set("frame", String(frame));
    const query = params.toString() ? `?${params}` : "";
    const response = await this.#fetch(`/v1/studies/${encodeURIComponent(studyId)}/pixels${query}`, { method: "GET" });
    if (!response.ok) this.#fail(response.status, await parseBody(response));
    const number = (name) => Number(response.headers.get(name));
    const width = number("X-Image-Width");
    const height = number("X-Image-Height");
    const buffer = await response.arrayBuffer();
    if (!width || !height || buffer.byteLength !== width * height * 2) {
      throw new ApiError(502, "The service sent pixels of an unexpected size.");
    }
    return {
      width,
      height,
      fullWidth: number("X-Full-Width") || width,
      fullHeight: number("X-Full-Height") || height,
      region: (response.headers.get("X-Region") || `0,0,${width},${height}`).split(",").map(Number),
      data: littleEndianUint16(buffer),
      valueMin: number("X-Value-Min"),
      valueMax: number("X-Value-Max"),
      frame: number("X-Frame") || 0,
      frames: number("X-Frames") || 1,
    };
  }

  /** A file the service makes (e.g. a DICOM SR) as a Blob, fetched with the bearer token. */
  async blob(path) {
    const response = await this.#fetch(path, { method: "GET" });
    if (!response.ok) this.#fail(response.status, await parseBody(response));
    return response.blob();
  }

  /** An image (PNG) as a decoded ImageBitmap, fetched with the bearer token. */
  async bitmap(path) {
    const response = await this.#fetch(path, { method: "GET" });
    if (!response.ok) this.#fail(response.status, await parseBody(response));
    return createImageBitmap(await response.blob());
  }

  /**
   * Upload one file with progress (XMLHttpRequest: fetch has no upload progress).
   * @returns {{promise: Promise<object>, abort: () => void}}
   */
  upload(file, onProgress) {
    const request = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      request.open("POST", "/v1/studies");
      if (this.token) request.setRequestHeader("Authorization", `Bearer ${this.token}`);
      request.responseType = "json";
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      request.onload = () => {
        if (request.status >= 200 && request.status < 300) {
          onProgress(1);
          resolve(request.response);
          return;
        }
        if (request.status === 401) this.onUnauthorized();
        const [message, type] = errorMessage(request.status, request.response);
        reject(new ApiError(request.status, message, type));
      };
      request.onerror = () => reject(new ApiError(0, "The service cannot be reached: check your connection."));
      request.onabort = () => reject(new ApiError(0, "Upload cancelled."));
      const form = new FormData();
      form.append("file", file, neutralName(file.name));
      request.send(form);
    });
    return { promise, abort: () => request.abort() };
  }

  async #fetch(path, init, authorised = true) {
    const headers = new Headers(init.headers || {});
    if (authorised && this.token) headers.set("Authorization", `Bearer ${this.token}`);
    try {
      return await fetch(path, { ...init, headers, credentials: "same-origin", cache: "no-store" });
    } catch {
      throw new ApiError(0, "The service cannot be reached: check that it is running.");
    }
  }

  #fail(status, body) {
    if (status === 401) this.onUnauthorized();
    const [message, type] = errorMessage(status, body);
    throw new ApiError(status, message, type);
  }
}

/** "upload.dcm": the type's extension without the original name, which may carry identifiers. */
function neutralName(name) {
  const match = /\.(dcm|dicom|png|jpe?g)$/i.exec(name || "");
  return match ? `upload.${match[1].toLowerCase()}` : "upload";
}

function littleEndianUint16(buffer) {
  const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (littleEndianHost) return new Uint16Array(buffer);
  const view = new DataView(buffer);
  const out = new Uint16Array(buffer.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(i * 2, true);
  return out;
}
