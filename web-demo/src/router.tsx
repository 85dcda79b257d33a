// A minimal client-side router over the History API: the server answers
// every client route with index.html, and this picks the page.
import { useEffect, useState, type AnchorHTMLAttributes } from 'react';

export type Route =
  | { page: 'catalogue'; params: URLSearchParams }
  | { page: 'product'; id: string }
  | { page: 'basket' }
  | { page: 'checkout' }
  | { page: 'orders' }
  | { page: 'admin' }
  | { page: 'signin' }
  | { page: 'notfound' };

export function parseRoute(location: Location): Route {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const product = /^\/products\/([^/]+)$/.exec(path);
  if (path === '/') return { page: 'catalogue', params: new URLSearchParams(location.search) };
  if (product) return { page: 'product', id: decodeURIComponent(product[1]) };
  switch (path) {
    case '/basket':
      return { page: 'basket' };
    case '/checkout':
      return { page: 'checkout' };
    case '/orders':
      return { page: 'orders' };
    case '/admin':
      return { page: 'admin' };
    case '/signin':
      return { page: 'signin' };
    default:
      return { page: 'notfound' };
  }
}

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((listener) => listener());
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location));
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** A real link (keyboard, middle-click, copy) that navigates in place. */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const { href, onClick, ...rest } = props;
  return (
    <a
      href={href}
      onClick={(event) => {
        onClick?.(event);
        if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        navigate(href);
      }}
      {...rest}
    />
  );
}
