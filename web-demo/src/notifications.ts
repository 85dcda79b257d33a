// The bell's state: the latest notifications, the unread count, and a live
// `notificationAdded` subscription that resumes where it left off. When the
// socket drops, the subscription is dropped with it (graphql-ws would
// otherwise resend the original `after`); when the socket is back, it is
// started again with `after` = the last notification seen, so those created
// while offline arrive first, in order, and none twice (ids already shown
// are skipped as well). An inbox that was empty when it loaded resumes
// from the nil UUID, before every notification: what was created since
// the page loaded (or while offline) is all the user has.
import { useCallback, useEffect, useRef, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import {
  MyBasketDocument,
  MarkAllNotificationsReadDocument,
  MarkNotificationReadDocument,
  NotificationAddedDocument,
  NotificationsDocument,
  type NotificationAddedSubscription,
  type NotificationViewFragment,
} from './gql/graphql';
import { useSession } from './session';
import { byId } from './client';

const SHOWN = 20;
/** The cursor of a client that has seen no notification (see above). */
const BEFORE_ALL = '00000000-0000-0000-0000-000000000000';

export interface Bell {
  /** Whether the first page and the unread count have been read. */
  loaded: boolean;
  items: NotificationViewFragment[];
  unread: number;
  /** The newest live arrival, for the screen-reader announcement. */
  latest: NotificationViewFragment | null;
  markRead: (id: string) => Promise<void>;
  markAllRead: () => Promise<void>;
}

export function useBell(): Bell {
  const { clients } = useSession();
  const [{ data }] = useQuery({ query: NotificationsDocument, variables: { first: SHOWN }, requestPolicy: 'network-only' });
  const [items, setItems] = useState<NotificationViewFragment[]>([]);
  const [unread, setUnread] = useState(0);
  const [latest, setLatest] = useState<NotificationViewFragment | null>(null);
  const seen = useRef(new Set<string>());
  const lastId = useRef<string | null>(null);
  const loaded = data !== undefined;

  useEffect(() => {
    if (!data) return;
    const nodes = data.myNotifications.edges.map((edge) => edge.node);
    nodes.forEach((node) => seen.current.add(node.id));
    lastId.current ??= nodes[0]?.id ?? null;
    setItems(nodes);
    setUnread(data.notificationStats.unread);
  }, [data]);

  useEffect(() => {
    if (!loaded) return;
    const { ws } = clients;
    let stop: (() => void) | null = null;
    const start = () => {
      stop?.();
      stop = ws.subscribe<NotificationAddedSubscription>(
        {
          query: '',
          extensions: byId(NotificationAddedDocument),
          variables: { after: lastId.current ?? BEFORE_ALL },
        },
        {
          next: (result) => {
            const added = result.data?.notificationAdded;
            if (!added) return;
            lastId.current = added.id;
            if (seen.current.has(added.id)) return;
            seen.current.add(added.id);
            setItems((current) => [added, ...current].slice(0, SHOWN));
            if (added.status === 'SENT') setUnread((count) => count + 1);
            setLatest(added);
            // What a completed payment bought leaves the basket by event,
            // a moment after checkout answered: show the basket as it is now.
            if (added.type === 'PAYMENT_COMPLETED') {
              void clients.client.query(MyBasketDocument, {}, { requestPolicy: 'network-only' }).toPromise();
            }
          },
          error: () => {
            stop = null;
          },
          complete: () => {
            stop = null;
          },
        },
      );
    };
    start();
    const offClosed = ws.on('closed', () => {
      const current = stop;
      stop = null;
      current?.();
    });
    const offConnected = ws.on('connected', () => {
      if (!stop) start();
    });
    return () => {
      offClosed();
      offConnected();
      stop?.();
    };
  }, [clients, loaded]);

  const [, markOne] = useMutation(MarkNotificationReadDocument);
  const [, markAll] = useMutation(MarkAllNotificationsReadDocument);
  const markRead = useCallback(
    async (id: string) => {
      const result = await markOne({ id });
      const updated = result.data?.markNotificationRead;
      if (!updated) return;
      setItems((current) => current.map((item) => (item.id === id ? updated : item)));
      setUnread((count) => Math.max(0, count - 1));
    },
    [markOne],
  );
  const markAllRead = useCallback(async () => {
    const result = await markAll({});
    if (result.error) return;
    setItems((current) => current.map((item) => (item.status === 'SENT' ? { ...item, status: 'READ' } : item)));
    setUnread(0);
  }, [markAll]);
  return { loaded, items, unread, latest, markRead, markAllRead };
}
