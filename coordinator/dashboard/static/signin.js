// Signing in: the token comes from the sign-in link (`/#token=…`, printed by `botfleet
// server`, opened by `botfleet dashboard`) or from the prompt, and is kept for this tab
// only (sessionStorage). The role it carries decides whether the action buttons show;
// the coordinator checks every call anyway.
// Loaded before dashboard.js; nothing here runs until dashboard.js calls start().
"use strict";

const TOKEN_KEY = "botfleet.token";
const ACTING_ROLES = ["admin", "operator"];
const DASHBOARD_ROLES = ["admin", "operator", "reader"];

const signedIn = { name: null, role: null };

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function canAct() {
  return ACTING_ROLES.includes(signedIn.role);
}

// The fragment's `token=…` (if any) goes into sessionStorage and out of the address bar
// and the history entry at once, before anything else runs; other parts (`job=…`) stay.
function takeTokenFromAddress() {
  const parts = location.hash.replace(/^#/, "").split("&").filter((part) => part !== "");
  const given = parts.find((part) => part.startsWith("token="));
  if (given === undefined) return;
  let value = "";
  try { value = decodeURIComponent(given.slice("token=".length)).trim(); } catch (_) { value = ""; }
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  const rest = parts.filter((part) => !part.startsWith("token=")).join("&");
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

function showSignedIn() {
  document.body.classList.toggle("can-act", canAct());
  const who = $("signed-in");
  const named = signedIn.name && signedIn.name !== signedIn.role; // not the server's "admin"
  who.textContent = named ? `${signedIn.name} · ${signedIn.role}` : signedIn.role || "";
  who.hidden = !signedIn.role;
  $("forget-token").hidden = !token();
}

// Who the token is: GET /v1/whoami. A coordinator older than that call answers 404 and
// knows a single operator token, the admin token, so that is what the token is.
async function learnRole() {
  try {
    const me = await api("GET", "/v1/whoami");
    signedIn.name = me.name || null;
    signedIn.role = me.role;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    signedIn.name = null;
    signedIn.role = "admin";
  }
}

async function signIn() {
  if ($("token-dialog").open) $("token-dialog").close();
  showSignedIn();
  try {
    await learnRole();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // asking for a token
    if (error instanceof ApiError) {
      askForToken(`The coordinator refused the token: ${error.message}`);
      return;
    }
    setLive("bad", `cannot reach the coordinator (${error.message}); retrying`);
    view.timer = setTimeout(signIn, POLL_MS);
    return;
  }
  if (!DASHBOARD_ROLES.includes(signedIn.role)) {
    const role = signedIn.role;
    const article = /^[aeiou]/.test(role) ? "An" : "A";
    askForToken(`${article} ${role} token cannot read the fleet; use a reader, operator or admin token.`);
    return;
  }
  showSignedIn();
  if (view.openJobId) openJob(view.openJobId);
  startPolling();
}

function askForToken(problem) {
  sessionStorage.removeItem(TOKEN_KEY);
  signedIn.name = null;
  signedIn.role = null;
  stopPolling();
  showSignedIn();
  $("token-error").hidden = !problem;
  $("token-error").textContent = problem || "";
  setLive("bad", "not signed in");
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
  $("token-input").focus();
}

// A sign-in link opened in a tab that already shows the dashboard changes only the
// fragment, which reloads nothing: take the new token and sign in with it.
function signInFromNewLink() {
  if (!/(^#|&)token=/.test(location.hash)) return;
  stopPolling();
  takeTokenFromAddress();
  if (token()) signIn();
}

function wireSignIn() {
  window.addEventListener("hashchange", signInFromNewLink);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    $("token-dialog").close();
    signIn();
  });
  $("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
  $("forget-token").addEventListener("click", () => askForToken(""));
}
