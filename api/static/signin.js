// Sign-in page: POST the token, then go to ?next= (a path on this site only) or the queue.
import { signIn } from "/static/api.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // only a local path: "/x" but not "//host" or "/\host" (no open redirect)
  return /^\/(?![/\\])/.test(next) && !next.startsWith("/signin") ? next : "/";
}

const form = document.getElementById("signin-form");
const input = document.getElementById("token");
const error = document.getElementById("signin-error");
input.focus();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = input.value.trim();
  if (!token) {
    error.textContent = "Enter a token.";
    input.focus();
    return;
  }
  const button = document.getElementById("signin-submit");
  button.disabled = true;
  error.textContent = "";
  try {
    await signIn(token);
    location.assign(nextPage());
  } catch (e) {
    error.textContent = e.status === 401 ? "Unknown or revoked token." : `Sign-in failed: ${e.message}`;
    input.select();
    button.disabled = false;
  }
});
