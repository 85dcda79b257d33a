// Who is signed in: a bearer token kept in localStorage. In `shopgraph
// dev` the router's POST /dev/token hands out demo users' tokens; anywhere
// else a token from `shopgraph token` (or an identity provider) is pasted.

const STORAGE_KEY = 'shopgraph.token';

export interface Session {
  token: string;
  user: string;
  admin: boolean;
  /** Seconds since the epoch. */
  expires: number;
}

/** The claims of a JWT, unverified (the router verifies; this only reads who). */
export function readToken(token: string): Session | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { sub?: unknown; roles?: unknown; exp?: unknown };
    if (typeof claims.sub !== 'string') return null;
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    const expires = typeof claims.exp === 'number' ? claims.exp : 0;
    return { token, user: claims.sub, admin: roles.includes('admin'), expires };
  } catch {
    return null;
  }
}

export function loadSession(): Session | null {
  const token = localStorage.getItem(STORAGE_KEY);
  const session = token ? readToken(token) : null;
  if (!session || session.expires * 1000 < Date.now()) {
    localStorage.removeItem(STORAGE_KEY);
    return null;
  }
  return session;
}

export function saveSession(session: Session | null) {
  if (session) localStorage.setItem(STORAGE_KEY, session.token);
  else localStorage.removeItem(STORAGE_KEY);
}

/** Why the demo sign-in failed, in words. */
export class SignInError extends Error {}

/** Asks `shopgraph dev` for a demo user's token (404 outside dev). */
export async function demoSignIn(user: string): Promise<Session> {
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (response.status === 404) {
    throw new SignInError(
      'Demo sign-in exists only in `shopgraph dev`. Paste a token from `shopgraph token --user NAME` instead.',
    );
  }
  const body = (await response.json()) as { token?: string; errors?: { message: string }[] };
  const session = body.token ? readToken(body.token) : null;
  if (!response.ok || !session) {
    throw new SignInError(body.errors?.[0]?.message ?? `Sign-in failed (HTTP ${response.status}).`);
  }
  return session;
}
