// The bearer token: taken once from the launcher's link (#token=...), then kept in localStorage.
const KEY = "tapedeck.token";

export function tokenFromHash(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const token = params.get("token");
  return token !== null && token.length > 0 ? token : null;
}

export function adoptTokenFromLocation(
  storage: Storage,
  location: Location,
  history: History,
): void {
  const token = tokenFromHash(location.hash);
  if (token === null) return;
  storage.setItem(KEY, token);
  // Keep the secret out of the address bar and the history.
  history.replaceState(null, "", location.pathname + location.search);
}

// A token pasted into the sign-in form.
export function storeToken(storage: Storage, token: string): void {
  storage.setItem(KEY, token.trim());
}

export function currentToken(storage: Storage): string | null {
  return storage.getItem(KEY);
}

export function forgetToken(storage: Storage): void {
  storage.removeItem(KEY);
}
