// AI Story Creator: the browser page. Plain ES modules, no framework and no build step, so the
// server can embed these files as they are. Served under a strict Content-Security-Policy
// (script-src 'self', style-src 'self', connect-src 'self'): no inline code, no eval, no
// other origins; every call below goes to this server with relative URLs.
//
// Layout of this file: helpers, the session (tokens, serialized refresh), the API client
// (fetch + XHR upload), then the views: sign-in, uploads, gallery, photo dialog.

const API = "/api/v1";
const PAGE_SIZE = 24;
const UPLOADS_AT_ONCE = 2;
const THUMB_SIZE = 256;
const THUMB_MAX_TRIES = 30; // a thumbnail not ready after ~30 polls is shown as "no preview"
const STREAM_MAX_RENEWALS = 5; // consecutive event-stream failures before giving up
const STYLES_FALLBACK = ["adventure", "bedtime", "mystery", "poem"];

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/**
 * A status message for everyone, screen readers included (aria-live regions). While the photo
 * dialog is open the rest of the page is inert (hidden from assistive technology too), so the
 * dialog has its own region.
 */
function announce(text, kind = "info") {
  const status = $("#photo-dialog").open ? $("#photo-status") : $("#status");
  status.textContent = text;
  status.dataset.kind = kind;
}

function humanSize(bytes) {
  if (bytes == null) return "unknown";
  const units = ["bytes", "kB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
// `taken_at_local` has no zone: parsed as local time it prints the camera's wall clock.
const formatDate = (value) => (value ? dateFormat.format(new Date(value)) : null);

const titleOf = (photo) => photo.title || "Untitled photo";

// ---------------------------------------------------------------------------------------------
// Problems: every error answer is application/problem+json {type, title, status, detail}.

class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.type = problem?.type || "";
    this.errors = problem?.errors || null;
    this.retryAfter = retryAfter == null || retryAfter === "" ? null : Number(retryAfter);
  }
  // Clients branch on the type's last segment, never on `detail` (which is for people).
  is(kind) {
    return this.type.endsWith(`/problems/${kind}`);
  }
}

/** The session is over (refresh refused): the page already went back to sign-in. */
class SessionEnded extends Error {}

async function problemOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status alone will do
  }
  return new ApiError(response.status, body, response.headers.get("Retry-After"));
}

function reportError(error, fallback = "Something went wrong.") {
  if (error instanceof SessionEnded || error?.name === "AbortError") return;
  announce(error instanceof ApiError ? error.message : `${fallback} ${error.message || ""}`.trim(), "error");
}

// ---------------------------------------------------------------------------------------------
// Session. Tokens are kept in sessionStorage, not localStorage: they survive a reload but end
// with the tab, so the 30-day refresh token is not left on disk, and each tab has its own
// login. A shared login (localStorage) would let two tabs rotate the same single-use refresh
// token at once, and presenting a used refresh token revokes the whole login.

const TOKENS_KEY = "aistory.tokens";
let tokens = readTokens(); // {access, refresh, expiresAt (ms), username}
let refreshing = null; // the one refresh in flight: every caller awaits the same promise
let refreshTimer = 0;
let epoch = 0; // bumped at sign-in and sign-out: late answers of an old session are dropped

function readTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS_KEY));
  } catch {
    return null;
  }
}

function storeTokens(answer, username) {
  tokens = {
    access: answer.access_token,
    refresh: answer.refresh_token,
    expiresAt: Date.now() + answer.expires_in * 1000,
    username,
  };
  sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  scheduleRefresh();
}

function clearTokens() {
  tokens = null;
  sessionStorage.removeItem(TOKENS_KEY);
  clearTimeout(refreshTimer);
}

/** Refresh a minute before the access token expires (a quarter of its life when shorter). */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!tokens) return;
  const life = tokens.expiresAt - Date.now();
  const delay = Math.max(1000, life - Math.min(60_000, life / 4));
  refreshTimer = setTimeout(() => refreshTokens().catch((error) => reportError(error)), delay);
}

/**
 * Exchange the refresh token for new tokens. Refresh tokens are single use: two refreshes with
 * the same token would look like theft and end every session, so concurrent callers share one.
 */
function refreshTokens() {
  refreshing ??= (async () => {
    const current = tokens;
    if (!current) throw new SessionEnded();
    const response = await fetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh }),
    });
    if (tokens !== current) throw new SessionEnded(); // signed out meanwhile
    if (response.status === 401 || response.status === 422) {
      endSession("Your session has ended. Please sign in again.");
      throw new SessionEnded();
    }
    if (!response.ok) throw await problemOf(response);
    storeTokens(await response.json(), current.username);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** A usable access token: refreshed first when it expires within 15 s (timers sleep in hidden tabs). */
async function accessToken() {
  if (refreshing) await refreshing;
  if (!tokens) throw new SessionEnded();
  if (tokens.expiresAt - Date.now() < 15_000) await refreshTokens();
  return tokens.access;
}

/**
 * Sends a request with the bearer token; a 401 refreshes once and tries again (unless another
 * request already refreshed since this one was sent). `send(token)` returns a response-like
 * {status}; the second 401 ends the session.
 */
async function withToken(send) {
  let token = await accessToken();
  let response = await send(token);
  if (response.status !== 401) return response;
  if (tokens?.access === token) await refreshTokens();
  token = await accessToken();
  response = await send(token);
  if (response.status === 401) {
    endSession("Your session has ended. Please sign in again.");
    throw new SessionEnded();
  }
  return response;
}

/**
 * The API client. Returns the parsed JSON (null for 204), or the Response itself with
 * `raw: true` (images); anything but 2xx throws an ApiError carrying the problem.
 */
async function api(path, { method = "GET", json, raw = false } = {}) {
  const response = await withToken((token) => {
    const headers = { Authorization: `Bearer ${token}` };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const body = json === undefined ? undefined : JSON.stringify(json);
    return fetch(`${API}${path}`, { method, headers, body });
  });
  if (!response.ok) throw await problemOf(response);
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** Requests that need no token (sign-in, sign-up). */
async function publicPost(path, json) {
  const response = await fetch(`${API}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(json),
  });
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

/** An image the API serves (it needs the bearer token, so no plain <img src>): an object URL. */
async function imageUrl(url) {
  const response = await api(url.replace(/^\/api\/v1/, ""), { raw: true });
  return URL.createObjectURL(await response.blob());
}

// What this deployment accepts, from its OpenAPI document: story styles and languages, and the
// upload limit. Optional: the page falls back to the documented defaults.
const deployment = { styles: STYLES_FALLBACK, language: null, maxUploadBytes: null };

async function readDeployment() {
  try {
    const response = await fetch("/api/openapi.json");
    if (!response.ok) return;
    const schemas = (await response.json()).components?.schemas ?? {};
    const body = schemas.StoryRequestBody?.properties ?? {};
    const styleRef = body.style?.$ref ?? body.style?.allOf?.[0]?.$ref ?? "#/components/schemas/StyleName";
    const styles = schemas[styleRef.split("/").pop()]?.enum;
    if (Array.isArray(styles) && styles.length) deployment.styles = styles;
    // The languages this deployment's writer accepts (the built-in one: English only).
    deployment.language = body.language ?? null;
    deployment.maxUploadBytes = schemas.DirectUploadRequest?.properties?.size_bytes?.maximum ?? null;
  } catch {
    // the defaults stand
  }
  fillStoryForm();
}

// ---------------------------------------------------------------------------------------------
// Signed in / signed out.

function startSession() {
  epoch += 1;
  $("#auth").hidden = true;
  $("#app").hidden = false;
  $("#account").hidden = false;
  $("#account-name").textContent = tokens.username ?? "";
  scheduleRefresh();
  resetGallery();
  loadMorePhotos();
}

/** Back to sign-in: everything of the session goes (streams, uploads, object URLs, tokens). */
function endSession(message) {
  epoch += 1;
  clearTokens();
  closeDialogs();
  cancelUploads();
  resetGallery();
  $("#app").hidden = true;
  $("#account").hidden = true;
  $("#auth").hidden = false;
  if (message) announce(message);
  $("#signin-username").focus();
}

function showFieldErrors(form, errors) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    const messages = errors?.[slot.dataset.errorFor];
    slot.textContent = messages ? [].concat(messages).join("; ") : "";
    const input = form.elements[slot.dataset.errorFor];
    if (input instanceof HTMLElement) input.toggleAttribute("aria-invalid", Boolean(messages));
  }
}

async function signIn(username, password) {
  const answer = await publicPost("/auth/login", { username, password });
  storeTokens(answer, username);
  try {
    // Show the account's own spelling of its name (the login may have used the email).
    const me = await api("/users/me");
    storeTokens(answer, me.username);
  } catch (error) {
    if (error instanceof SessionEnded) throw error;
  }
  startSession();
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username || !password) {
    showFieldErrors(form, { form: "Enter your username (or email) and password." });
    return;
  }
  showFieldErrors(form, null);
  form.querySelector("button").disabled = true;
  try {
    await signIn(username, password);
    form.reset();
    announce(`Signed in as ${tokens.username}.`);
  } catch (error) {
    showFieldErrors(form, { form: error.message });
  } finally {
    form.querySelector("button").disabled = false;
  }
}

async function onSignUp(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const fields = Object.fromEntries(["username", "email", "password"].map((name) => [name, form.elements[name].value]));
  fields.username = fields.username.trim();
  fields.email = fields.email.trim();
  // The server checks the same rules; checking here saves a round trip and says which field.
  const errors = {};
  if (!/^[A-Za-z0-9_]{3,32}$/.test(fields.username)) errors.username = "3–32 letters, digits or _.";
  if (!form.elements.email.checkValidity() || !fields.email) errors.email = "Enter a valid email address.";
  if (fields.password.length < 8 || fields.password.length > 128) errors.password = "8–128 characters.";
  showFieldErrors(form, errors);
  if (Object.keys(errors).length) return;
  form.querySelector("button[type=submit]").disabled = true;
  try {
    await publicPost("/auth/register", fields);
    await signIn(fields.username, fields.password);
    form.reset();
    announce(`Welcome, ${tokens.username}! Add a photo to begin.`);
  } catch (error) {
    // Field errors (409 already-taken, 422) go next to their fields; anything else on the form.
    const errors = { ...error.errors };
    const placed = Object.keys(errors).some((name) => form.querySelector(`[data-error-for="${name}"]`));
    if (!placed) errors.form = error.message;
    showFieldErrors(form, errors);
  } finally {
    form.querySelector("button[type=submit]").disabled = false;
  }
}

async function onSignOut() {
  $("#signout").disabled = true;
  if (refreshing) await refreshing.catch(() => {}); // log out the newest refresh token
  if (tokens) {
    try {
      // Revokes the refresh token on the server (its access token expires by itself).
      await publicPost("/auth/logout", { refresh_token: tokens.refresh });
    } catch {
      // Signed out here all the same; the refresh token expires by itself.
    }
  }
  $("#signout").disabled = false;
  endSession("Signed out.");
}

// ---------------------------------------------------------------------------------------------
// Uploads: one row per file with a progress bar. XMLHttpRequest, because fetch cannot report
// upload progress. Rows carry data-state="queued|uploading|done|error".

const uploadQueue = [];
const activeUploads = new Set(); // XHRs in flight, aborted at sign-out

function addFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  const titleInput = $("#upload-title");
  const title = titleInput.value.trim();
  titleInput.value = "";
  for (const file of files) {
    const progress = el("progress", { max: 100, value: 0 });
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const row = el(
      "li",
      { className: "upload", dataset: { state: "queued", name: file.name } },
      el("span", { className: "upload-name", title: file.name }, file.name),
      progress,
      el("span", { className: "upload-status" }, "Waiting…"),
    );
    $("#uploads").prepend(row);
    uploadQueue.push({ file, title, row, epoch });
  }
  $("#clear-uploads").hidden = false;
  announce(files.length === 1 ? `Uploading ${files[0].name}…` : `Uploading ${files.length} files…`);
  pumpUploads();
}

function pumpUploads() {
  while (activeUploads.size < UPLOADS_AT_ONCE && uploadQueue.length) {
    const job = uploadQueue.shift();
    const slot = {};
    activeUploads.add(slot);
    runUpload(job, slot).finally(() => {
      activeUploads.delete(slot);
      pumpUploads();
    });
  }
}

function setUploadState(row, state, text, percent) {
  row.dataset.state = state;
  row.querySelector(".upload-status").textContent = text;
  if (percent != null) row.querySelector("progress").value = percent;
}

async function runUpload({ file, title, row, epoch: started }, slot) {
  if (started !== epoch) return;
  if (deployment.maxUploadBytes && file.size > deployment.maxUploadBytes) {
    setUploadState(row, "error", `Too large: ${humanSize(file.size)}; the limit is ${humanSize(deployment.maxUploadBytes)}.`);
    return;
  }
  setUploadState(row, "uploading", "Uploading… 0%", 0);
  try {
    const response = await withToken((token) => sendUpload(file, title, token, slot, (fraction) => {
      const percent = Math.round(fraction * 100);
      setUploadState(row, "uploading", percent < 100 ? `Uploading… ${percent}%` : "Checking…", percent);
    }));
    if (started !== epoch) return;
    if (response.status !== 201) {
      let problem = null;
      try {
        problem = JSON.parse(response.text);
      } catch {
        // not a problem document
      }
      throw new ApiError(response.status, problem, response.retryAfter);
    }
    setUploadState(row, "done", "Done", 100);
    const photo = JSON.parse(response.text);
    addTile(photo, "start");
    announce(`Uploaded ${file.name}.`);
  } catch (error) {
    if (error instanceof SessionEnded || started !== epoch) return;
    setUploadState(row, "error", error.message || "The upload failed.");
    announce(`${file.name}: ${error.message}`, "error");
  }
}

/** One multipart POST; resolves with {status, text, retryAfter} whatever the status. */
function sendUpload(file, title, token, slot, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    slot.xhr = xhr;
    xhr.open("POST", `${API}/photos`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () =>
      resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader("Retry-After") });
    xhr.onerror = () => reject(new Error("The connection failed before the server answered; try again."));
    xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
    const form = new FormData();
    if (title) form.append("title", title);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

function cancelUploads() {
  uploadQueue.length = 0;
  for (const slot of activeUploads) slot.xhr?.abort();
  $("#uploads").replaceChildren();
  $("#clear-uploads").hidden = true;
}

function clearFinishedUploads() {
  for (const row of document.querySelectorAll('.upload[data-state="done"], .upload[data-state="error"]')) row.remove();
  $("#clear-uploads").hidden = !$("#uploads").children.length;
}

function setUpDropZone() {
  const zone = $("#dropzone");
  const hasFiles = (event) => event.dataTransfer?.types.includes("Files");
  zone.addEventListener("dragenter", (event) => {
    if (hasFiles(event)) zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (!$("#app").hidden) addFiles(event.dataTransfer.files);
  });
  // A file dropped anywhere else would make the browser navigate to it: refuse such drops.
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = zone.contains(event.target) ? "copy" : "none";
  });
  window.addEventListener("drop", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
}

// ---------------------------------------------------------------------------------------------
// Gallery: newest first, a page at a time as the sentinel below it scrolls into view.

const gallery = { tiles: new Map(), cursor: null, done: false, loading: false };
const moreObserver = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMorePhotos();
});

function resetGallery() {
  moreObserver.disconnect();
  for (const tile of gallery.tiles.values()) dropTile(tile);
  gallery.tiles.clear();
  Object.assign(gallery, { cursor: null, done: false, loading: false });
  $("#gallery").replaceChildren();
  $("#gallery-more").replaceChildren();
  $("#gallery-empty").hidden = true;
}

async function loadMorePhotos() {
  if (gallery.loading || gallery.done || !tokens) return;
  const started = epoch;
  gallery.loading = true;
  $("#gallery-more").replaceChildren("Loading…");
  try {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (gallery.cursor) query.set("cursor", gallery.cursor);
    const page = await api(`/photos?${query}`);
    if (started !== epoch) return;
    for (const photo of page.items) addTile(photo, "end");
    gallery.cursor = page.next_cursor;
    gallery.done = !page.next_cursor;
    $("#gallery-more").replaceChildren();
  } catch (error) {
    if (started !== epoch) return;
    reportError(error, "Could not load your photos.");
    // No automatic retry loop: the user asks again.
    const retry = el("button", { type: "button", className: "secondary" }, "Try again");
    retry.addEventListener("click", () => loadMorePhotos());
    $("#gallery-more").replaceChildren("Could not load more photos. ", retry);
    return;
  } finally {
    if (started === epoch) gallery.loading = false;
  }
  updateEmptyState();
  // Observing again reports the sentinel's current position: if a page did not fill the
  // window it is still in view, and the next page loads at once.
  if (!gallery.done) {
    moreObserver.unobserve($("#gallery-more"));
    moreObserver.observe($("#gallery-more"));
  }
}

function updateEmptyState() {
  $("#gallery-empty").hidden = gallery.tiles.size > 0 || !gallery.done;
}

const STATUS_LABELS = {
  pending: "Uploading",
  uploaded: "",
  processing: "Writing…",
  completed: "Story",
  failed: "Failed",
};

function addTile(photo, where) {
  if (gallery.tiles.has(photo.id)) return updateTile(photo);
  const image = el("img", { alt: "", decoding: "async" });
  const thumb = el("span", { className: "thumb", dataset: { thumb: "loading" } }, image, el("span", { className: "thumb-note" }));
  const button = el(
    "button",
    { type: "button", className: "tile-button" },
    thumb,
    el("span", { className: "tile-caption" }, el("span", { className: "tile-title" }), el("span", { className: "badge" })),
  );
  const node = el("li", { className: "tile", dataset: { id: photo.id } }, button);
  button.addEventListener("click", () => openPhoto(photo.id));
  const tile = { photo, node, image, thumb, url: null, timer: 0, tries: 0 };
  gallery.tiles.set(photo.id, tile);
  if (where === "start") $("#gallery").prepend(node);
  else $("#gallery").append(node);
  updateTile(photo);
  loadThumbnail(tile);
  updateEmptyState();
}

function updateTile(photo) {
  const tile = gallery.tiles.get(photo.id);
  if (!tile) return;
  const becameReady = tile.photo.thumbnail_status !== "ready" && photo.thumbnail_status === "ready";
  tile.photo = photo;
  tile.node.dataset.status = photo.status;
  tile.node.querySelector(".tile-title").textContent = titleOf(photo);
  tile.node.querySelector(".badge").textContent = STATUS_LABELS[photo.status] ?? photo.status;
  // Untitled photos are told apart by their upload time.
  const label = [titleOf(photo), `uploaded ${formatDate(photo.created_at)}`, STATUS_LABELS[photo.status]];
  tile.node.querySelector("button").setAttribute("aria-label", label.filter(Boolean).join(", "));
  // A thumbnail we were waiting for is there now: no need to wait for the next poll.
  if (becameReady && tile.thumb.dataset.thumb === "pending") {
    clearTimeout(tile.timer);
    loadThumbnail(tile);
  }
}

function removeTile(id) {
  const tile = gallery.tiles.get(id);
  if (!tile) return;
  dropTile(tile);
  tile.node.remove();
  gallery.tiles.delete(id);
  updateEmptyState();
}

function dropTile(tile) {
  clearTimeout(tile.timer);
  tile.gone = true;
  if (tile.url) URL.revokeObjectURL(tile.url);
}

function setThumbState(tile, state, note = "") {
  tile.thumb.dataset.thumb = state;
  tile.thumb.querySelector(".thumb-note").textContent = note;
}

/**
 * The thumbnail is made after the upload: until then the API answers 404 thumbnail-not-ready
 * with Retry-After, and we poll (a bounded number of times). A format the server cannot decode
 * (HEIC) is thumbnail-unavailable: a neutral tile.
 */
async function loadThumbnail(tile) {
  if (tile.photo.thumbnail_status === "unavailable") return setThumbState(tile, "unavailable", "No preview");
  if (tile.tries === 0) setThumbState(tile, "loading", "Preparing preview…");
  try {
    const base = tile.photo.thumbnail_url ?? `${API}/photos/${tile.photo.id}/thumbnail`;
    const url = await imageUrl(`${base}?size=${THUMB_SIZE}`);
    if (tile.gone) return URL.revokeObjectURL(url);
    tile.url = url;
    tile.image.src = url;
    await tile.image.decode().catch(() => {});
    setThumbState(tile, "ready");
  } catch (error) {
    if (tile.gone || error instanceof SessionEnded) return;
    if (error instanceof ApiError && error.is("thumbnail-not-ready") && tile.tries < THUMB_MAX_TRIES) {
      tile.tries += 1;
      setThumbState(tile, "pending", "Preparing preview…");
      const seconds = Math.min(Math.max(error.retryAfter ?? 2, 1), 60);
      tile.timer = setTimeout(() => loadThumbnail(tile), seconds * 1000);
    } else {
      setThumbState(tile, "unavailable", "No preview");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Photo dialog: the original, details, story (followed live while it is written), rename,
// delete.

const view = { id: null, photo: null, url: null, stream: null, streamSeq: 0, failures: 0 };

async function openPhoto(id) {
  const tile = gallery.tiles.get(id);
  view.id = id;
  view.photo = tile?.photo ?? null;
  view.failures = 0;
  const dialog = $("#photo-dialog");
  setFrame("loading", "Loading…");
  $("#photo-status").textContent = "";
  $("#photo-image").removeAttribute("src");
  setStory("none", "");
  if (view.photo) renderPhoto(view.photo);
  if (!dialog.open) dialog.showModal();
  try {
    const photo = await api(`/photos/${id}`);
    if (view.id !== id) return;
    updateTile(photo);
    renderPhoto(photo);
    showStoryFor(photo);
    const url = await imageUrl(photo.content_url ?? `${API}/photos/${id}/content`);
    if (view.id !== id) return URL.revokeObjectURL(url);
    view.url = url;
    const image = $("#photo-image");
    image.src = url;
    image.alt = titleOf(photo);
    try {
      await image.decode();
      if (view.id === id) setFrame("ready", "");
    } catch {
      // HEIC, for one: stored and described, but browsers cannot draw it.
      if (view.id === id) setFrame("error", `This browser cannot show ${photo.content_type ?? "this"} images.`);
    }
  } catch (error) {
    if (view.id !== id) return;
    if (error instanceof ApiError && error.status === 404) {
      closePhotoDialog();
      removeTile(id);
      announce("That photo is no longer there.", "error");
      return;
    }
    setFrame("error", "Could not load the image.");
    reportError(error, "Could not load the photo.");
  }
}

function setFrame(state, note) {
  $("#photo-frame").dataset.state = state;
  $("#photo-frame .frame-note").textContent = note;
}

function renderPhoto(photo) {
  view.photo = photo;
  $("#photo-title").textContent = titleOf(photo);
  const rename = $("#rename-input");
  if (document.activeElement !== rename) rename.value = photo.title ?? "";
  const taken = formatDate(photo.taken_at) ?? formatDate(photo.taken_at_local);
  const rows = [
    ["Size", humanSize(photo.size_bytes)],
    ["Dimensions", photo.width && photo.height ? `${photo.width} × ${photo.height} px` : null],
    ["Type", photo.content_type],
    ["Taken", taken],
    ["Uploaded", formatDate(photo.created_at)],
    ["Status", photo.status], // a failure's reason is in the story area
  ];
  $("#photo-details").replaceChildren(
    ...rows.filter(([, value]) => value).flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]),
  );
  const submit = $("#story-submit");
  submit.disabled = photo.status === "processing" || photo.status === "pending";
  submit.textContent =
    photo.status === "processing" ? "Writing…" : ["completed", "failed"].includes(photo.status) ? "Regenerate" : "Write a story";
}

/** What the story area shows for the photo's status. */
function showStoryFor(photo) {
  if (photo.status === "completed") {
    stopFollowing();
    loadStory(photo.id);
  } else if (photo.status === "processing") {
    setStory("processing", "");
    if (!view.stream) follow(photo.id);
  } else if (photo.status === "failed") {
    stopFollowing();
    const reason = (photo.error || "no reason given").replace(/\.$/, "");
    setStory("failed", `The story could not be written: ${reason}. You can try again.`);
  } else {
    setStory("none", "No story yet: choose a style and write one.");
  }
}

/** data-state on #story: none | processing | ready | failed (what a test waits for). */
function setStory(state, message) {
  const box = $("#story");
  box.dataset.state = state;
  box.setAttribute("aria-busy", String(state === "processing"));
  $("#story-progress").hidden = state !== "processing";
  $("#story-message").textContent = message;
  if (state !== "ready") $("#story-content").hidden = true;
}

async function loadStory(id) {
  try {
    const story = await api(`/photos/${id}/story`);
    if (view.id !== id) return;
    $("#story-title").textContent = story.title;
    // Paragraphs are separated by blank lines; text nodes only, never HTML.
    const paragraphs = story.body.split(/\n\s*\n/).map((text) => el("p", {}, text.trim()));
    $("#story-body").replaceChildren(...paragraphs);
    const by = story.model ? `${story.provider} (${story.model})` : story.provider;
    $("#story-meta").textContent = `${story.style} · ${story.language} · written by ${by} · ${formatDate(story.created_at)}`;
    $("#story-content").hidden = false;
    setStory("ready", "");
  } catch (error) {
    if (view.id !== id) return;
    if (error instanceof ApiError && error.status === 404) setStory("none", "No story yet.");
    else reportError(error, "Could not load the story.");
  }
}

/**
 * Follows the photo as server-sent events. EventSource cannot send a bearer token, so a
 * 60-second ticket goes in its URL; when the stream fails for good (an expired ticket on
 * reconnection, the 30-minute limit) a new ticket opens a new stream. The first event is the
 * photo as it is now, so nothing is missed in between.
 */
async function follow(id) {
  stopFollowing();
  const seq = ++view.streamSeq;
  let ticket;
  try {
    ticket = await api(`/photos/${id}/events/ticket`, { method: "POST" });
  } catch (error) {
    if (view.id === id && seq === view.streamSeq) reportError(error, "Could not follow the story.");
    return;
  }
  if (view.id !== id || seq !== view.streamSeq) return;
  const stream = new EventSource(ticket.url);
  view.stream = stream;
  stream.addEventListener("status", (event) => {
    view.failures = 0;
    const photo = JSON.parse(event.data);
    updateTile(photo);
    if (view.id !== id) return;
    renderPhoto(photo);
    if (photo.status !== "processing") {
      stopFollowing();
      showStoryFor(photo);
      announce(photo.status === "completed" ? "Your story is ready." : photo.status === "failed" ? "The story could not be written." : "");
    }
  });
  stream.addEventListener("deleted", () => {
    stopFollowing();
    closePhotoDialog();
    removeTile(id);
    announce("The photo was deleted.");
  });
  stream.addEventListener("error", () => {
    // CONNECTING: the browser reconnects by itself (with Last-Event-ID). CLOSED: it gave up.
    if (stream.readyState !== EventSource.CLOSED || view.stream !== stream) return;
    view.stream = null;
    view.failures += 1;
    if (view.failures > STREAM_MAX_RENEWALS) {
      announce("Lost the live connection. Close and reopen the photo to see its progress.", "error");
      return;
    }
    setTimeout(() => {
      if (view.id === id && seq === view.streamSeq) follow(id);
    }, 1000 * view.failures);
  });
}

function stopFollowing() {
  view.streamSeq += 1;
  view.stream?.close();
  view.stream = null;
}

async function onWriteStory(event) {
  event.preventDefault();
  const id = view.id;
  const form = event.currentTarget;
  if (!form.reportValidity()) return;
  const submit = $("#story-submit");
  submit.disabled = true;
  try {
    const photo = await api(`/photos/${id}/story`, {
      method: "POST",
      json: { style: form.elements.style.value, language: form.elements.language.value.trim() },
    });
    if (view.id !== id) return;
    announce("Writing your story…");
    updateTile(photo);
    renderPhoto(photo);
    setStory("processing", "");
    follow(id);
  } catch (error) {
    if (view.id === id) renderPhoto(view.photo);
    reportError(error, "Could not ask for a story.");
  }
}

async function onRename(event) {
  event.preventDefault();
  const id = view.id;
  const title = $("#rename-input").value.trim();
  try {
    // An empty title clears it.
    const photo = await api(`/photos/${id}`, { method: "PATCH", json: { title: title || null } });
    updateTile(photo);
    if (view.id === id) renderPhoto(photo);
    announce(title ? `Renamed to “${title}”.` : "Title cleared.");
  } catch (error) {
    reportError(error, "Could not rename the photo.");
  }
}

function onDeleteAsk() {
  const confirm = $("#confirm-dialog");
  confirm.returnValue = "";
  $("#confirm-text").textContent = `“${titleOf(view.photo ?? { id: view.id })}” and its stories will be removed for good.`;
  confirm.showModal();
}

async function onConfirmClosed() {
  if ($("#confirm-dialog").returnValue !== "delete" || view.id == null) return;
  const id = view.id;
  try {
    await api(`/photos/${id}`, { method: "DELETE" });
    closePhotoDialog();
    removeTile(id);
    announce("Photo deleted.");
    $("#gallery .tile-button")?.focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      closePhotoDialog();
      removeTile(id);
    }
    reportError(error, "Could not delete the photo.");
  }
}

function closePhotoDialog() {
  const dialog = $("#photo-dialog");
  if (dialog.open) dialog.close();
  else onPhotoDialogClosed();
}

/** Whatever closed the dialog (Escape, the button, a deletion): stop the stream, free the image. */
function onPhotoDialogClosed() {
  stopFollowing();
  view.id = null;
  view.photo = null;
  if (view.url) URL.revokeObjectURL(view.url);
  view.url = null;
  $("#photo-image").removeAttribute("src");
}

function closeDialogs() {
  const confirm = $("#confirm-dialog");
  if (confirm.open) {
    confirm.returnValue = "";
    confirm.close();
  }
  closePhotoDialog();
}

function fillStoryForm() {
  const select = $("#story-style");
  const chosen = select.value;
  select.replaceChildren(
    ...deployment.styles.map((style) => el("option", { value: style }, style[0].toUpperCase() + style.slice(1))),
  );
  if (deployment.styles.includes(chosen)) select.value = chosen;
  const language = deployment.language;
  if (!language?.pattern) return;
  // The server's own rule, when the browser can use it as a pattern (else the server says no).
  try {
    new RegExp(language.pattern, "v"); // throws on a pattern the browser cannot use
    $("#story-language").pattern = language.pattern.replace(/^\^|\$$/g, "");
  } catch {
    $("#story-language").removeAttribute("pattern");
  }
  if (language.description) $("#story-language-hint").textContent = language.description.replaceAll("`", "");
}

// ---------------------------------------------------------------------------------------------

function main() {
  $("#signin-form").addEventListener("submit", onSignIn);
  $("#signup-form").addEventListener("submit", onSignUp);
  $("#signout").addEventListener("click", onSignOut);
  $("#choose-files").addEventListener("click", () => $("#file-input").click());
  $("#file-input").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = ""; // choosing the same file again still fires `change`
  });
  $("#clear-uploads").addEventListener("click", clearFinishedUploads);
  setUpDropZone();

  const dialog = $("#photo-dialog");
  dialog.addEventListener("close", onPhotoDialogClosed);
  // A click on the backdrop (the dialog element itself, outside its content) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  $("#photo-close").addEventListener("click", () => dialog.close());
  $("#story-form").addEventListener("submit", onWriteStory);
  $("#rename-form").addEventListener("submit", onRename);
  $("#photo-delete").addEventListener("click", onDeleteAsk);
  $("#confirm-dialog").addEventListener("close", onConfirmClosed);

  fillStoryForm();
  readDeployment();
  if (tokens?.access && tokens?.refresh) startSession();
  else endSession();
}

main();
