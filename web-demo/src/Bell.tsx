// The notification bell: unread count, the latest notifications, mark
// read; new ones arrive live (see notifications.ts).
import { useEffect, useId, useRef, useState } from 'react';
import { useBell } from './notifications';
import { when } from './format';

export function Bell() {
  const bell = useBell();
  const [open, setOpen] = useState(false);
  const panel = useId();
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!open) return;
    const close = (event: KeyboardEvent) => {
      if (event.key === 'Escape') {
        setOpen(false);
        button.current?.focus();
      }
    };
    window.addEventListener('keydown', close);
    return () => window.removeEventListener('keydown', close);
  }, [open]);
  return (
    <div className="bell">
      <button
        ref={button}
        type="button"
        aria-expanded={open}
        aria-busy={!bell.loaded}
        aria-controls={panel}
        aria-label={`Notifications, ${bell.unread} unread`}
        onClick={() => setOpen(!open)}
      >
        <svg aria-hidden="true" focusable="false" width="20" height="20" viewBox="0 0 24 24">
          <path
            fill="currentColor"
            d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
          />
        </svg>
        {bell.unread > 0 && (
          <span className="count" data-testid="unread-count">
            {bell.unread}
          </span>
        )}
      </button>
      <p className="visually-hidden" aria-live="polite">
        {bell.latest ? `New notification: ${bell.latest.title}` : ''}
      </p>
      {open && (
        <div id={panel} className="bell-panel" role="region" aria-label="Notifications">
          <div className="bell-head">
            <strong>Notifications</strong>
            <button type="button" className="link" disabled={bell.unread === 0} onClick={() => void bell.markAllRead()}>
              Mark all read
            </button>
          </div>
          {bell.items.length === 0 ? (
            <p className="muted">Nothing yet.</p>
          ) : (
            <ul data-testid="notifications">
              {bell.items.map((item) => (
                <li key={item.id} className={item.status === 'SENT' ? 'unread' : ''} data-testid="notification">
                  <strong>{item.title}</strong>
                  <p>{item.message}</p>
                  <span className="muted">{when(item.createdAt)}</span>
                  {item.status === 'SENT' && (
                    <button type="button" className="link" onClick={() => void bell.markRead(item.id)} aria-label={`Mark “${item.title}” read`}>
                      Mark read
                    </button>
                  )}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
