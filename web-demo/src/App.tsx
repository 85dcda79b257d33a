// The shell: header (navigation, basket count, notification bell, who is
// signed in), the current page, and the clients for the current user.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Provider, useQuery } from 'urql';
import { loadSession, saveSession, type Session } from './auth';
import { makeClients } from './client';
import { MyBasketDocument } from './gql/graphql';
import { Bell } from './Bell';
import { Link, useRoute, type Route } from './router';
import { SessionContext, useSession } from './session';
import { Catalogue } from './pages/Catalogue';
import { ProductPage } from './pages/Product';
import { BasketPage } from './pages/Basket';
import { CheckoutPage } from './pages/Checkout';
import { OrdersPage } from './pages/Orders';
import { AdminPage } from './pages/Admin';
import { SignInPage } from './pages/SignIn';

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const clients = useMemo(() => makeClients(session?.token ?? null), [session]);
  useEffect(
    () => () => {
      // `dispose` rejects with the CloseEvent when the socket is still
      // connecting; it is being thrown away either way.
      Promise.resolve(clients.ws.dispose()).catch(() => {});
    },
    [clients],
  );
  const signIn = useCallback((next: Session) => {
    saveSession(next);
    setSession(next);
  }, []);
  const signOut = useCallback(() => {
    saveSession(null);
    setSession(null);
  }, []);
  const state = useMemo(() => ({ session, clients, signIn, signOut }), [session, clients, signIn, signOut]);
  return (
    <SessionContext.Provider value={state}>
      <Provider value={clients.client}>
        <Shell />
      </Provider>
    </SessionContext.Provider>
  );
}

const TITLES: Record<Route['page'], string> = {
  catalogue: 'Catalogue',
  product: 'Product',
  basket: 'Your basket',
  checkout: 'Checkout',
  orders: 'Your orders',
  admin: 'Admin',
  signin: 'Sign in',
  notfound: 'Not found',
};

function Shell() {
  const route = useRoute();
  const { session } = useSession();
  const main = useRef<HTMLElement>(null);
  useEffect(() => {
    document.title = `${TITLES[route.page]} · Shopgraph`;
    // Move focus to the new page, for keyboard and screen-reader users.
    main.current?.focus();
  }, [route]);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          Shopgraph
        </Link>
        <nav aria-label="Main">
          <Link href="/">Catalogue</Link>
          {session && <BasketLink />}
          {session && <Link href="/orders">Orders</Link>}
          {session?.admin && <Link href="/admin">Admin</Link>}
        </nav>
        <div className="who">
          {session && <Bell key={session.token} />}
          {session ? <UserMenu /> : <Link href="/signin">Sign in</Link>}
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}

function BasketLink() {
  const [{ data }] = useQuery({ query: MyBasketDocument });
  const count = data?.myBasket.itemCount ?? 0;
  return (
    <Link href="/basket" aria-label={`Basket, ${count} item${count === 1 ? '' : 's'}`}>
      Basket <span className="count neutral" data-testid="basket-count">{count}</span>
    </Link>
  );
}

function UserMenu() {
  const { session, signOut } = useSession();
  if (!session) return null;
  return (
    <span className="user">
      <span data-testid="signed-in-as">{session.user}</span>
      <button type="button" className="link" onClick={signOut}>
        Sign out
      </button>
    </span>
  );
}

function Page({ route }: { route: Route }) {
  const { session } = useSession();
  const needsUser = ['basket', 'checkout', 'orders', 'admin'].includes(route.page);
  if (needsUser && !session) return <SignInPage />;
  switch (route.page) {
    case 'catalogue':
      return <Catalogue params={route.params} />;
    case 'product':
      return <ProductPage id={route.id} />;
    case 'basket':
      return <BasketPage />;
    case 'checkout':
      return <CheckoutPage />;
    case 'orders':
      return <OrdersPage />;
    case 'admin':
      return session?.admin ? <AdminPage /> : <p role="alert">The admin page needs an admin sign-in.</p>;
    case 'signin':
      return <SignInPage />;
    case 'notfound':
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            <Link href="/">Back to the catalogue</Link>
          </p>
        </section>
      );
  }
}
