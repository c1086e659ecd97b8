// Validation errors of a source's answer as one line naming the bad fields, for error messages.
import type { z } from 'zod';

/** "posts[3].post.published: Invalid input" style messages naming the bad field. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => {
      const where = i.path.reduce<string>(
        (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
        '',
      );
      return `${where || '(root)'}: ${i.message}`;
    })
    .join('; ');
}
