// The session and the REST client. The access token lives in memory only; the refresh token
// is kept in sessionStorage so that a reload of this tab does not sign the user out (it is
// gone when the tab closes, and other tabs and sites cannot read it). See docs/console.md.

const REFRESH_KEY = "churn.console.refresh";
const ROLE_RANK = { viewer: 0, analyst: 1, admin: 2, owner: 3 };
// Refresh this long before the access token expires.
const REFRESH_MARGIN_SECONDS = 60;
const RETRY_REFRESH_MS = 15_000;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText || "Error", detail: `HTTP ${response.status}` };
  }
}

export class Session {
  constructor() {
    this.accessToken = null;
    this.expiresAt = 0;
    this.user = null;
    this.timer = null;
    this.refreshing = null;
    this.listeners = new Set();
  }

  /** Called with the new access token after each login or refresh, and null after logout. */
  onToken(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get signedIn() {
    return this.accessToken !== null;
  }

  /** At least ``role`` (viewer < analyst < admin < owner). */
  can(role) {
    return this.user !== null && (ROLE_RANK[this.user.role] ?? -1) >= ROLE_RANK[role];
  }

  async login(email, password) {
    const response = await fetch("/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    if (!response.ok) throw new ApiError(response.status, await readProblem(response));
    await this.#accept(await response.json());
  }

  /** Resume a session after a reload, from the refresh token of this tab. */
  async restore() {
    if (!sessionStorage.getItem(REFRESH_KEY)) return false;
    try {
      await this.refresh();
      return true;
    } catch {
      this.#forget();
      return false;
    }
  }

  /** One refresh at a time; callers that arrive meanwhile share it. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.#refresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async #refresh() {
    const refreshToken = sessionStorage.getItem(REFRESH_KEY);
    if (!refreshToken) throw new ApiError(401, { title: "Signed out" });
    const response = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
    if (!response.ok) {
      const problem = await readProblem(response);
      if (response.status === 400 || response.status === 401) this.#forget();
      throw new ApiError(response.status, problem);
    }
    await this.#accept(await response.json());
  }

  async #accept(tokens) {
    this.accessToken = tokens.access_token;
    this.expiresAt = Date.now() + tokens.expires_in * 1000;
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    clearTimeout(this.timer);
    const delay = Math.max(5, tokens.expires_in - REFRESH_MARGIN_SECONDS) * 1000;
    this.timer = setTimeout(() => this.#refreshOnTime(), delay);
    if (!this.user) this.user = await this.get("/v1/users/me");
    for (const listener of this.listeners) listener(this.accessToken);
  }

  /** A failed refresh that did not sign the user out (the network, a 5xx) is retried. */
  #refreshOnTime() {
    this.refresh().catch(() => {
      if (sessionStorage.getItem(REFRESH_KEY)) {
        this.timer = setTimeout(() => this.#refreshOnTime(), RETRY_REFRESH_MS);
      }
    });
  }

  /** Revoke the refresh token's family at the server, then forget everything. */
  async logout() {
    const refreshToken = sessionStorage.getItem(REFRESH_KEY);
    try {
      if (refreshToken) {
        await fetch("/v1/auth/logout", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${this.accessToken}`,
          },
          body: JSON.stringify({ refresh_token: refreshToken }),
        });
      }
    } finally {
      this.#forget();
    }
  }

  #forget() {
    clearTimeout(this.timer);
    sessionStorage.removeItem(REFRESH_KEY);
    const wasSignedIn = this.accessToken !== null;
    this.accessToken = null;
    this.user = null;
    if (wasSignedIn) for (const listener of this.listeners) listener(null);
  }

  /** A JSON request to the gateway; one refresh and retry on a 401. Throws ApiError. */
  async request(method, path, { body, form, query, raw = false } = {}) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value === undefined || value === null || value === "") continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
    }
    if (this.accessToken && Date.now() > this.expiresAt - 5000) await this.refresh();
    const send = () =>
      fetch(url, {
        method,
        headers: {
          ...(this.accessToken ? { authorization: `Bearer ${this.accessToken}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          accept: "application/json",
        },
        // A FormData body sets its own multipart content type.
        body: form !== undefined ? form : body !== undefined ? JSON.stringify(body) : undefined,
      });
    let response = await send();
    if (response.status === 401 && sessionStorage.getItem(REFRESH_KEY)) {
      await this.refresh();
      response = await send();
    }
    if (!response.ok) throw new ApiError(response.status, await readProblem(response));
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  post(path, body) {
    return this.request("POST", path, { body: body === undefined ? {} : body });
  }

  put(path, body) {
    return this.request("PUT", path, { body });
  }
}
