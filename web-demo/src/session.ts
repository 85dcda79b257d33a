// The signed-in user and the GraphQL clients made for them, shared by
// every page.
import { createContext, useContext } from 'react';
import type { Session } from './auth';
import type { Clients } from './client';

export interface SessionState {
  session: Session | null;
  clients: Clients;
  signIn: (session: Session) => void;
  signOut: () => void;
}

export const SessionContext = createContext<SessionState | null>(null);

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside <App>');
  return state;
}
