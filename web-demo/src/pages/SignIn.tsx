// Sign-in: in `shopgraph dev`, one click per demo user (POST /dev/token);
// anywhere, a pasted token.
import { useState, type FormEvent } from 'react';
import { demoSignIn, readToken, SignInError } from '../auth';
import { navigate } from '../router';
import { useSession } from '../session';

const DEMO_USERS = [
  { user: 'alice', what: 'a shopper' },
  { user: 'bob', what: 'another shopper' },
  { user: 'admin', what: 'the shop administrator' },
];

export function SignInPage() {
  const { signIn } = useSession();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [pasted, setPasted] = useState('');

  const done = () => {
    if (window.location.pathname === '/signin') navigate('/', true);
  };

  const demo = async (user: string) => {
    setBusy(true);
    setError(null);
    try {
      signIn(await demoSignIn(user));
      done();
    } catch (err) {
      setError(err instanceof SignInError ? err.message : 'The shop could not be reached.');
    } finally {
      setBusy(false);
    }
  };

  const paste = (event: FormEvent) => {
    event.preventDefault();
    const session = readToken(pasted.trim());
    if (!session) {
      setError('That is not a token (expected three dot-separated parts).');
      return;
    }
    signIn(session);
    done();
  };

  return (
    <section className="narrow">
      <h1>Sign in</h1>
      <h2>Demo users</h2>
      <ul className="demo-users">
        {DEMO_USERS.map(({ user, what }) => (
          <li key={user}>
            <button type="button" disabled={busy} onClick={() => void demo(user)}>
              Sign in as {user}
            </button>{' '}
            <span className="muted">{what}</span>
          </li>
        ))}
      </ul>
      <form onSubmit={paste}>
        <label htmlFor="token">Or paste a token</label>
        <textarea
          id="token"
          rows={3}
          value={pasted}
          onChange={(event) => setPasted(event.target.value)}
          aria-describedby="token-help"
        />
        <p id="token-help" className="muted">
          From <code>shopgraph token --user NAME</code> (add <code>--admin</code> for the admin page).
        </p>
        <button type="submit">Use this token</button>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  );
}
